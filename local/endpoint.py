"""The local multi-model endpoint: SageMaker Runtime's InvokeEndpoint in front of the container.

An unmodified boto3 `sagemaker-runtime` client with `endpoint_url` set to this process gets
predictions:

    POST /endpoints/{EndpointName}/invocations     X-Amzn-SageMaker-Target-Model: <key>

One process serves every stage's endpoint (`<project>-dev`, `<project>-prod`); each target model
is a key under its stage's multi-model prefix in the local S3, as on AWS. On first use of a
target the artifact is copied into a cache directory and loaded through the serving container's
`POST /models`; when the container answers 507 the least recently used model is unloaded and
the load retried. The container runs with `--verify-target-model`, as the image does on AWS: it
is handed the target model only as the invocation's X-Amzn-SageMaker-Target-Model header and
unpickles a model only if its model file has the sha256 that name carries, so an archive
replaced or crafted under a stage's prefix is refused (`container.provenance`).
Errors come back the way SageMaker sends them, so botocore raises the same
exceptions: ValidationError (400) for an unknown endpoint, a missing target-model header, a
target model name SageMaker would refuse (over 1024 characters, not printable ASCII, '.' or '..'
segments) or a missing artifact, ModelError (424, with OriginalStatusCode and OriginalMessage)
when the container refuses or fails, ServiceUnavailable (503) when the container is down. No
answer names a file on this machine.

The serving container is a child process (`local.serving_container`). If it dies (killed, crashed), the next request or
health check restarts it, at most RESTART_LIMIT times in RESTART_WINDOW seconds, and its models
are loaded again on first use; past that limit `/ping` answers 503 and so does every request,
so the health check never says healthy about a container that is gone. A request must declare
its Content-Length (at most the 6 MB InvokeEndpoint allows) and send its body in time
(`local.loopback`); other methods than GET /ping and POST get a JSON 405.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from local.deploy_store import (
    deploy_lock,
    endpoint_dir,
    endpoint_state_path,
    local_deployer,
    local_inference_log,
    local_storage,
)
from local.home import LocalHome
from local.loopback import JSONRequestHandler, LoopbackHTTPServer
from local.serving_container import (
    CONTAINER_TIMEOUT_SECONDS,
    ContainerDown,
    EndpointFailure,
    ModelCache,
    ServingContainer,
)
from modeldeploy import naming
from modeldeploy.invoker import Invoker, TableMissing
from modeldeploy.smoke import SmokeResult, smoke_stage

log = logging.getLogger("local.endpoint")

VARIANT = naming.VARIANT_NAME
# InvokeEndpoint's Body limit (botocore's BodyBlob max) and TargetModel's length limit.
MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_TARGET_MODEL_CHARS = 1024


def check_target_model(target: str | None, endpoint: str) -> str:
    """The TargetModel header as SageMaker validates it (botocore's InvokeEndpoint shape: 1 to
    1024 printable characters, the first not a space), relative to the model prefix: no '.',
    '..' or empty segments, which S3 keys under the prefix never need. ValidationError if not."""
    if not target:
        raise EndpointFailure(
            400,
            "ValidationError",
            f"Endpoint {endpoint} is a multi-model endpoint: the TargetModel header is required.",
        )
    problem = None
    if len(target) > MAX_TARGET_MODEL_CHARS:
        problem = f"has {len(target)} characters, more than {MAX_TARGET_MODEL_CHARS}"
    elif target[0].isspace() or not all(" " <= c <= "~" for c in target):
        problem = "must be printable ASCII and may not start with a space"
    elif any(part in ("", ".", "..") for part in target.split("/")):
        problem = "may not have empty, '.' or '..' path segments"
    if problem is not None:
        raise EndpointFailure(
            400,
            "ValidationError",
            f"1 validation error detected: Value at 'targetModel' failed to satisfy constraint: "
            f"TargetModel {problem}",
        )
    return target


class _Handler(JSONRequestHandler):
    server: _EndpointHTTPServer
    allowed_methods = ("GET", "POST")

    def error_body(self, status: int, code: str, message: str) -> tuple[bytes, dict[str, str]]:
        return EndpointFailure(status, code, message).body(), {"x-amzn-ErrorType": code}

    def do_GET(self) -> None:
        if self.path != "/ping":
            self._fail(EndpointFailure(404, "UnknownOperationException", "no such operation"))
            return
        try:
            healthy = self.server.cache.serving.healthy()
            message = "the serving container does not answer its /ping"
        except ContainerDown as failure:
            healthy, message = False, failure.message
        if healthy:
            self._send(200, b'{"status": "Healthy"}', "application/json")
        else:
            self._send(
                503,
                json.dumps({"status": "Unhealthy", "message": message}).encode(),
                "application/json",
            )

    def do_POST(self) -> None:
        body = self.read_body(MAX_BODY_BYTES)
        if body is None:
            return
        try:
            self._invoke(body)
        except EndpointFailure as failure:
            self._fail(failure)
        except Exception as error:  # a bug answers as SageMaker's InternalFailure, with a reason
            log.exception("invocation failed")
            # The type only: an exception's text may name files on this machine; the log has it.
            self._fail(
                EndpointFailure(
                    500,
                    "InternalFailure",
                    f"the local endpoint failed ({type(error).__name__}); see its log",
                )
            )

    def _invoke(self, body: bytes) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
            raise EndpointFailure(
                404, "UnknownOperationException", f"no such operation: {self.path[:200]}"
            )
        endpoint = unquote(parts[1])
        stage = self.server.stages.get(endpoint)
        if stage is None:
            raise EndpointFailure(
                400,
                "ValidationError",
                f"Endpoint {endpoint[:100]} of account {naming.LOCAL_ACCOUNT} not found.",
            )
        target = check_target_model(self.headers.get("X-Amzn-SageMaker-Target-Model"), endpoint)
        name = f"{endpoint}/{target}"
        artifact = naming.model_prefix_uri(self.server.bucket, stage) + target
        forward = {
            key: value
            for key in ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")
            if (value := self.headers.get(key)) is not None
        }
        forward["X-Amzn-SageMaker-Target-Model"] = target
        cache = self.server.cache
        for attempt in range(2):
            try:
                cache.serving.revive()
                cache.ensure(name, artifact)
                status, headers, data = cache.serving.request(
                    "POST", f"/models/{quote(name, safe='')}/invoke", body, forward
                )
            except (OSError, http.client.HTTPException) as error:
                if attempt == 0 and not cache.serving.running():
                    continue  # the container died under this request: restart it, once
                log.error("the serving container does not answer: %s", error)
                raise EndpointFailure(
                    503, "ServiceUnavailable", "the serving container is not answering"
                ) from None
            if status == 404 and attempt == 0:
                cache.forget(name)  # unloaded under us (evicted for another model): load again
                continue
            break
        if status != 200:
            raise EndpointFailure(
                424,
                "ModelError",
                f"Received client error ({status}) from primary with message "
                f'"{data.decode(errors="replace")}".',
                OriginalStatusCode=status,
                OriginalMessage=data.decode(errors="replace"),
            )
        extra = {"x-Amzn-Invoked-Production-Variant": VARIANT}
        if "x-amzn-sagemaker-custom-attributes" in headers:
            extra["X-Amzn-SageMaker-Custom-Attributes"] = headers[
                "x-amzn-sagemaker-custom-attributes"
            ]
        self._send(200, data, headers.get("content-type", "application/json"), extra)

    def _fail(self, failure: EndpointFailure) -> None:
        self._send(
            failure.status,
            failure.body(),
            "application/json",
            {"x-amzn-ErrorType": failure.code},
        )

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_json(
            status,
            body,
            {"Content-Type": content_type, "x-amzn-RequestId": str(uuid.uuid4()), **(extra or {})},
        )


class _EndpointHTTPServer(LoopbackHTTPServer):
    def __init__(
        self, address: tuple[str, int], stages: dict[str, str], bucket: str, cache: ModelCache
    ) -> None:
        super().__init__(address, _Handler)
        self.stages = stages
        self.bucket = bucket
        self.cache = cache


class LocalEndpoint:
    """Every stage's endpoint of a project, served from one local home."""

    def __init__(
        self,
        home: Path,
        project: str = naming.DEFAULT_PROJECT_NAME,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 1,
        memory_budget_mb: int | None = None,
    ) -> None:
        self.home = home
        self.project = project
        self.bucket = naming.local_bucket(project)
        self.stages = {naming.endpoint_name(project, stage): stage for stage in naming.STAGES}
        self.serving = ServingContainer(
            endpoint_dir(home) / "container.log",
            workers=workers,
            memory_budget_mb=memory_budget_mb,
        )
        self.cache = ModelCache(self.serving, LocalHome(home).s3, endpoint_dir(home) / "cache")
        # A restarted container holds no models: each is loaded again on its first use.
        self.serving.on_restart = self.cache.forget_all
        self.host = host
        self.port = port
        self._server: _EndpointHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the endpoint is not running")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> LocalEndpoint:
        self.serving.start()
        try:
            self._server = _EndpointHTTPServer(
                (self.host, self.port), self.stages, self.bucket, self.cache
            )
        except OSError:
            self.serving.stop()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.serving.stop()

    def __enter__(self) -> LocalEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def announced(endpoint: LocalEndpoint, home: Path, **extra: str) -> Iterator[LocalEndpoint]:
    """Record a running endpoint in the home, so other commands and approval hooks use it."""
    state = endpoint_state_path(home)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"endpoint_url": endpoint.url, "pid": os.getpid(), **extra}))
    try:
        yield endpoint
    finally:
        state.unlink(missing_ok=True)


def runtime_client(endpoint_url: str) -> Any:
    """A plain boto3 sagemaker-runtime client aimed at a local endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, read_timeout=CONTAINER_TIMEOUT_SECONDS),
    )


def local_invoker(
    home: Path, stage: str, endpoint_url: str, project: str = naming.DEFAULT_PROJECT_NAME
) -> Invoker:
    """The invoker handler as the Lambda runs it, reading the local routing table."""
    storage = local_storage(home)
    table_uri = naming.routing_table_uri(naming.local_bucket(project), stage)

    def read_table() -> bytes:
        if not storage.exists(table_uri):
            raise TableMissing(table_uri)
        return storage.read(table_uri)

    return Invoker(
        runtime=runtime_client(endpoint_url),
        endpoint_name=naming.endpoint_name(project, stage),
        read_table=read_table,
        stage=stage,
        inference_log=local_inference_log(home),
    )


def running_endpoint_url(home: Path) -> str | None:
    """The URL of a live `endpoint serve` for this home, if one answers."""
    state = endpoint_state_path(home)
    try:
        url = json.loads(state.read_text())["endpoint_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    host, _, port = url.removeprefix("http://").partition(":")
    try:
        connection = http.client.HTTPConnection(host, int(port), timeout=2)
        connection.request("GET", "/ping")
        healthy = connection.getresponse().status == 200
        connection.close()
    except (OSError, ValueError):
        return None
    return url if healthy else None


@contextmanager
def endpoint_url_for(home: Path, project: str = naming.DEFAULT_PROJECT_NAME) -> Iterator[str]:
    """The running endpoint's URL, or a temporary endpoint's for the duration of the block."""
    url = running_endpoint_url(home)
    if url is not None:
        yield url
        return
    with LocalEndpoint(home, project) as endpoint:
        yield endpoint.url


def smoke_locally(
    home: Path,
    stage: str,
    datasets: list[str] | None = None,
    project: str = naming.DEFAULT_PROJECT_NAME,
) -> list[SmokeResult]:
    """The stage's smoke test, its verdict applied as the pipeline's smoke command applies it
    (`modeldeploy.smoke.smoke_stage`: what the last deploy placed and fails is rolled back)."""
    with deploy_lock(home), endpoint_url_for(home, project) as url:
        return smoke_stage(
            local_deployer(home, project),
            stage,
            local_invoker(home, stage, url, project),
            datasets,
        ).results
