"""The worker's HTTP application: a bare ASGI callable (no framework) on uvicorn.

Routes (SageMaker's bring-your-own multi-model contract, plus the single-model one):
    GET    /ping                      200 {"status": "Healthy"}
    POST   /models                    {"model_name", "url"} -> 200, 400, 404, 409, 422, 507
    GET    /models[?limit=&next_page_token=]   {"models": [...], "nextPageToken"?}
    GET    /models/{name}             200 description, 404
    DELETE /models/{name}             200, 404
    POST   /models/{name}/invoke      predictions; 400, 404, 406, 413, 415, 507
    POST   /invocations               the same, for the model in /opt/ml/model

Loads and unloads are forwarded to the supervisor, which applies them in every worker before
answering; lists, descriptions and predictions are answered from this worker's own models.
A framework would cost 15-40 % of throughput on cheap models (reference/serving.md, B.3).

Why this file is long: `WorkerApp` is the worker's whole HTTP surface (the MME routes, their
limits and replies) in one class by design, without a framework (see above); splitting the
routes would spread one request's handling over modules.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from container.archive import error_reason
from container.artifact import check_model_dir
from container.errors import InputError
from container.provenance import routed_model_sha256
from container.serving import encode, heap
from container.serving.batching import MicroBatcher
from container.serving.config import ServerConfig
from container.serving.control import Channel, ChannelClosed, RemoteError
from container.serving.errors import HttpError, bad_request, model_not_found
from container.serving.memory import process_rss, release_freed_memory
from container.serving.model import PendingModel, ServedModel, load_served_model

log = logging.getLogger("container.serve")

JSON_TYPE = b"application/json"
CSV_TYPE = b"text/csv; header=present"
CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"
TARGET_MODEL = b"x-amzn-sagemaker-target-model"
PAGE_LIMIT = 100  # MMS's default and maximum page size
# A load may take SageMaker's whole 360 s window; the supervisor gives each worker 300 s.
CONTROL_TIMEOUT = 330.0
_HEALTHY = orjson.dumps({"status": "Healthy"})
# Content-Type headers as clients usually send them, parsed once (the rest go through
# `_media_type`); a dict lookup instead of decode/split/strip/lower on every request.
_COMMON_MEDIA = {
    b"application/json": encode.JSON,
    b"text/csv": encode.CSV,
    b"application/json; charset=utf-8": encode.JSON,
    b"text/csv; charset=utf-8": encode.CSV,
}


class WorkerApp:
    def __init__(self, config: ServerConfig, control_socket: Any):
        self.config = config
        # PendingModel: held until an invocation names it (config.verify_target_model).
        self.models: dict[str, ServedModel | PendingModel] = {}
        self._verify_lock = asyncio.Lock()
        self.batchers: dict[str, MicroBatcher] = {}
        self.memory: dict[str, int] = {}
        self.default: ServedModel | None = None
        self._default_batcher: MicroBatcher | None = None
        self._control_socket = control_socket
        self._channel: Channel | None = None
        self._initialised: asyncio.Future[str | None] | None = None
        self._load_executor = ThreadPoolExecutor(1, thread_name_prefix="load")
        self._predict_executor = ThreadPoolExecutor(1, thread_name_prefix="predict")
        self._background: set[asyncio.Task[None]] = set()
        # Set by the worker entry point: asked to stop when the supervisor goes away.
        self.on_supervisor_lost: Any = None

    # -- ASGI entry --------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                failure = await self._start()
                if failure is None:
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.startup.failed", "message": failure})
            elif message["type"] == "lifespan.shutdown":
                self._load_executor.shutdown(wait=False)
                self._predict_executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> str | None:
        """Connect to the supervisor and wait for it to hand over the models to hold."""
        self._initialised = asyncio.get_running_loop().create_future()
        self._channel = await Channel.open(self._control_socket)
        task = asyncio.create_task(self._serve_control(self._channel))
        self._background.add(task)
        return await self._initialised

    async def _serve_control(self, channel: Channel) -> None:
        await channel.serve(self._on_control)
        if self._initialised is not None and not self._initialised.done():
            self._initialised.set_result("the supervisor went away during start-up")
        log.warning("supervisor connection closed; worker %d stops", os.getpid())
        if self.on_supervisor_lost is not None:
            self.on_supervisor_lost()

    # -- commands from the supervisor --------------------------------------------------------

    async def _on_control(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message["op"]
        if op == "apply_load":
            return await self._apply_load(message["name"], message["url"], message["dir"])
        if op == "apply_unload":
            self._apply_unload(message["name"])
            return {"ok": True}
        if op == "init":
            return await self._init(message)
        return {"ok": False, "status": 500, "message": f"unknown control operation {op!r}"}

    async def _init(self, message: dict[str, Any]) -> dict[str, Any]:
        failure = None
        default = message.get("default")
        if default is not None:
            reply = await self._load(default["name"], default["url"], default["dir"])
            if reply["ok"]:
                self.default = reply.pop("model")
                self._default_batcher = self._batcher(self.default)
                heap.settle()
            else:
                failure = f"cannot load the model for /invocations: {reply['message']}"
        for entry in message.get("models", []):
            reply = await self._apply_load(entry["name"], entry["url"], entry["dir"])
            if not reply["ok"]:
                log.error("could not reload model %s: %s", entry["name"], reply["message"])
        assert self._initialised is not None
        if not self._initialised.done():
            self._initialised.set_result(failure)
        return {"ok": failure is None, "message": failure}

    async def _load(
        self, name: str, url: str, directory: str, expected_sha256: str | None = None
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            model, grown = await loop.run_in_executor(
                self._load_executor, _load_measured, name, url, Path(directory), expected_sha256
            )
        except MemoryError:
            return {"ok": False, "status": 507, "message": "out of memory while loading"}
        except InputError as error:
            # The problem only: its file is a path in this server's scratch directory, which
            # would reach the endpoint's caller; the supervisor's reply names the model.
            return {"ok": False, "status": 422, "message": error.problem}
        except OSError as error:
            message = f"cannot read the artifact: {error_reason(error)}"
            return {"ok": False, "status": 422, "message": message}
        except Exception as error:  # an unpickled object can fail in any way
            log.exception("loading %s failed", name)
            return {"ok": False, "status": 500, "message": f"loading failed: {error_reason(error)}"}
        return {"ok": True, "model": model, "memory": grown}

    async def _apply_load(self, name: str, url: str, directory: str) -> dict[str, Any]:
        if self.config.verify_target_model:
            return await self._hold(name, url, directory)
        reply = await self._load(name, url, directory)
        if reply["ok"]:
            self._install(name, reply.pop("model"), reply["memory"])
        return reply

    def _install(self, name: str, model: ServedModel, memory: int) -> None:
        self.models[name] = model
        self.batchers[name] = self._batcher(model)
        self.memory[name] = memory
        heap.settle()
        log.info(
            "loaded model %s (%s) in %.1f ms; predicts through %s (%s)",
            name,
            model.url,
            model.load_seconds * 1000,
            model.path.name,
            model.path.reason,
        )

    async def _hold(self, name: str, url: str, directory: str) -> dict[str, Any]:
        """Check what needs no unpickling, and hold the model until an invocation names the
        target model it must be (`_verified`): the name is the only thing that vouches for it."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._load_executor, check_model_dir, Path(directory))
        except InputError as error:
            return {"ok": False, "status": 422, "message": error.problem}
        except OSError as error:
            message = f"cannot read the artifact: {error_reason(error)}"
            return {"ok": False, "status": 422, "message": message}
        self.models[name] = PendingModel(name, url, Path(directory))
        return {"ok": True, "memory": 0}

    async def _verified(
        self, name: str, model: ServedModel | PendingModel, target: bytes | None
    ) -> ServedModel:
        """The model, if it is the one the invocation's target model names (its sha256, carried
        in the name: `container.provenance`); a held model is loaded here, and only if its model
        file has that sha256. Otherwise an HttpError naming the model, never a file."""
        target_model = target.decode("latin-1") if target else None
        expected = routed_model_sha256(target_model)
        if expected is None:
            raise HttpError(
                400,
                "BadRequest",
                f"model {name} is served only to invocations whose target model names its model "
                f"file's sha256 (<version>-<sha256>.tar.gz, as the deploy routes it); got "
                f"{(target_model or '(none)')[:200]!r}",
            )
        current: ServedModel | PendingModel | None = model
        if isinstance(current, PendingModel):
            # One load per model: the invocations that waited find it loaded (or still held,
            # when the load before theirs was refused, and try with their own name).
            async with self._verify_lock:
                current = self.models.get(name)
                if isinstance(current, PendingModel):
                    reply = await self._load(name, current.url, str(current.directory), expected)
                    if not reply["ok"]:
                        kind = {507: "InsufficientMemory", 422: "InvalidModelException"}
                        raise HttpError(
                            reply["status"],
                            kind.get(reply["status"], "ModelLoadError"),
                            f"cannot load model {name}: {reply['message']}",
                        )
                    if self.models.get(name) is not current:  # unloaded while it loaded
                        raise model_not_found(name)
                    self._install(name, reply["model"], reply["memory"])
                    return reply["model"]
        if current is None:
            raise model_not_found(name)
        if current.version != expected:
            raise HttpError(
                422,
                "InvalidModelException",
                f"model {name} has model sha256 {current.version[:12]}..., not the "
                f"{expected[:12]}... its target model names",
            )
        return current

    def _apply_unload(self, name: str) -> None:
        model = self.models.pop(name, None)
        self.batchers.pop(name, None)
        self.memory.pop(name, None)
        if isinstance(model, ServedModel):
            released = weakref.ref(model.estimator)
            del model
            if released() is not None:
                # Requests in flight still hold it; look again once they must have finished.
                asyncio.get_running_loop().call_later(
                    heap.FORGET_AFTER_SECONDS, self._forget, released
                )
        release_freed_memory()
        log.info("unloaded model %s", name)

    def _forget(self, released: weakref.ref[Any]) -> None:
        heap.forget(released)
        release_freed_memory()

    def _batcher(self, model: ServedModel) -> MicroBatcher:
        return MicroBatcher(
            model.predict_proba,
            self._predict_executor,
            self.config.batch_max_rows,
            self.config.batch_max_delay_s,
        )

    # -- HTTP --------------------------------------------------------------------------------

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        try:
            status, body, content_type = await self._route(scope, receive, headers)
        except HttpError as error:
            status, body, content_type = error.status, orjson.dumps(error.body()), JSON_TYPE
            if status >= 500 or status == 404:
                log.info(
                    "%s %s -> %d %s (target model %s)",
                    scope["method"],
                    scope["path"],
                    status,
                    error.message,
                    headers.get(TARGET_MODEL, b"-").decode("latin-1"),
                )
        except Exception as error:  # a bug must still answer with a reason, never a bare 500
            log.exception("%s %s failed", scope["method"], scope["path"])
            # The type only: an exception's text may name files on this server; the log has it.
            failure = HttpError(
                500,
                "InternalServerError",
                f"the server failed handling the request ({type(error).__name__}); see its log",
            )
            status, body, content_type = 500, orjson.dumps(failure.body()), JSON_TYPE
        response_headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        attributes = headers.get(CUSTOM_ATTRIBUTES)
        if attributes is not None:
            response_headers.append((CUSTOM_ATTRIBUTES, attributes))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(
        self, scope: dict[str, Any], receive: Any, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes, bytes]:
        method = scope["method"]
        # raw_path keeps %2F, so a model name holding "/" still routes as one segment.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if path.startswith("/models/"):
            rest = path[len("/models/") :]
            if rest.endswith("/invoke"):
                _allow(method, "POST")
                name = unquote(rest[: -len("/invoke")])
                model = self.models.get(name)
                if model is None:
                    raise model_not_found(name)
                if self.config.verify_target_model:
                    model = await self._verified(name, model, headers.get(TARGET_MODEL))
                assert isinstance(model, ServedModel)
                return await self._invoke(model, self.batchers[name], receive, headers)
            name = unquote(rest)
            if method == "GET":
                return self._describe(name)
            _allow(method, "GET", "DELETE")
            return await self._control("unload", {"name": name})
        if path == "/ping":
            _allow(method, "GET")
            return 200, _HEALTHY, JSON_TYPE
        if path == "/invocations":
            _allow(method, "POST")
            if self.default is None or self._default_batcher is None:
                raise HttpError(
                    404,
                    "ModelNotFoundException",
                    "no model is served on /invocations: start the server with a model in "
                    "/opt/ml/model (or --model-dir), or use /models/{name}/invoke",
                )
            return await self._invoke(self.default, self._default_batcher, receive, headers)
        if path == "/models":
            if method == "GET":
                return self._list(scope.get("query_string", b""))
            _allow(method, "GET", "POST")
            return await self._register(await self._body(receive, headers))
        raise HttpError(404, "NotFound", f"no such resource: {method} {scope['path']}")

    async def _body(self, receive: Any, headers: dict[bytes, bytes]) -> bytes:
        limit = self.config.max_request_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body = message.get("body", b"")  # the whole body in one message: the usual case
            if len(body) > limit:
                raise _too_large(limit)
            return body
        chunks, size = [], 0
        while True:
            if message["type"] == "http.disconnect":
                raise HttpError(400, "BadRequest", "the client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
            message = await receive()

    async def _invoke(
        self, model: ServedModel, batcher: MicroBatcher, receive: Any, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes, bytes]:
        raw_type = headers.get(b"content-type", b"")
        media = _COMMON_MEDIA.get(raw_type) or _media_type(raw_type)
        accept = headers.get(b"accept")
        answer = encode.negotiate(accept.decode("latin-1")) if accept else encode.JSON
        if answer is None:
            raise HttpError(406, "NotAcceptable", "Accept must allow application/json or text/csv")
        body = await self._body(receive, headers)
        decoder = model.decoder
        matrix = decoder.from_csv(body) if media == encode.CSV else decoder.from_json(body)
        try:
            proba = await batcher.predict(matrix)
        except MemoryError:
            raise HttpError(507, "InsufficientMemory", "out of memory while predicting") from None
        except (ValueError, TypeError) as error:
            raise bad_request(f"the model rejected the input: {error}") from None
        except Exception as error:
            log.exception("model %s failed to predict", model.name)
            raise HttpError(
                500, "PredictionError", f"the model failed: {type(error).__name__}: {error}"
            ) from None
        if answer == encode.CSV:
            return 200, encode.encode_csv(proba, model.labels, model.keys), CSV_TYPE
        return 200, encode.encode_json(proba, model.labels, model.keys, model.version), JSON_TYPE

    def _list(self, query_string: bytes) -> tuple[int, bytes, bytes]:
        query = parse_qs(query_string.decode("latin-1"))
        limit = _query_int(query, "limit", PAGE_LIMIT, minimum=1)
        start = _query_int(query, "next_page_token", 0, minimum=0)
        names = sorted(self.models)
        page = names[start : start + min(limit, PAGE_LIMIT)]
        result: dict[str, Any] = {
            "models": [{"modelName": n, "modelUrl": self.models[n].url} for n in page]
        }
        if start + len(page) < len(names):
            result["nextPageToken"] = str(start + len(page))
        return 200, orjson.dumps(result), JSON_TYPE

    def _describe(self, name: str) -> tuple[int, bytes, bytes]:
        model = self.models.get(name)
        if model is None:
            raise model_not_found(name)
        description = model.describe()
        description["workerMemoryBytes"] = self.memory.get(name, 0)
        return 200, orjson.dumps(description), JSON_TYPE

    async def _register(self, body: bytes) -> tuple[int, bytes, bytes]:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise bad_request(f"the body is not valid JSON: {error}") from None
        if not isinstance(request, dict):
            raise bad_request('the body must be {"model_name": ..., "url": ...}')
        for field in ("model_name", "url"):
            value = request.get(field)
            if not isinstance(value, str) or not value:
                raise bad_request(f"Parameter {field} is required.")
        return await self._control("load", {"name": request["model_name"], "url": request["url"]})

    async def _control(self, op: str, arguments: dict[str, Any]) -> tuple[int, bytes, bytes]:
        if self._channel is None:
            raise HttpError(503, "ServiceUnavailable", "the worker is still starting")
        try:
            reply = await self._channel.call({"op": op, **arguments}, CONTROL_TIMEOUT)
        except ChannelClosed:
            raise HttpError(503, "ServiceUnavailable", "the server is shutting down") from None
        except TimeoutError:
            raise HttpError(
                503, "ServiceUnavailable", f"the {op} did not finish in {CONTROL_TIMEOUT:.0f} s"
            ) from None
        except RemoteError as error:
            kind = str(error).split(":", 1)[0]
            raise HttpError(
                500, "InternalServerError", f"the {op} failed in the server ({kind}); see its log"
            ) from None
        return reply["status"], orjson.dumps(reply["body"]), JSON_TYPE


def _load_measured(
    name: str, url: str, directory: Path, expected_sha256: str | None
) -> tuple[ServedModel, int]:
    before = process_rss(os.getpid())
    model = load_served_model(name, url, directory, expected_sha256)
    return model, max(process_rss(os.getpid()) - before, 0)


def _media_type(raw: bytes) -> str:
    """The request's media type, JSON or CSV; any other is a 415."""
    content_type = raw.decode("latin-1")
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (encode.JSON, encode.CSV):
        raise HttpError(
            415,
            "UnsupportedMediaType",
            f"Content-Type {content_type or '(none)'!r} is not supported; "
            "send text/csv or application/json",
        )
    return media


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HttpError(405, "MethodNotAllowed", f"use {' or '.join(allowed)}, not {method}")


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "PayloadTooLarge", f"the request body is larger than {limit} bytes")


def _query_int(query: dict[str, list[str]], name: str, default: int, minimum: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        number = int(values[0])
    except ValueError:
        raise bad_request(f"query parameter {name} must be an integer, got {values[0]!r}") from None
    if number < minimum:
        raise bad_request(f"query parameter {name} must be at least {minimum}")
    return number
