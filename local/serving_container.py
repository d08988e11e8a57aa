"""The serving container behind the local endpoint, and the endpoint's model cache.

`ServingContainer` runs the project's serving app (`python -m container serve
--verify-target-model`) as a child process and restarts it when it dies, at most RESTART_LIMIT
times in RESTART_WINDOW seconds; past that it stays down and every request is answered 503
(`ContainerDown`). `ModelCache` copies a target model's artifact from the local S3 into the
endpoint's cache directory on first use and loads it through the container's `POST /models`,
unloading the least recently used model when the container answers 507. `local.endpoint` puts
the InvokeEndpoint API in front of both.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import container
from container.errors import InputError
from container.files import replacing
from container.serving.config import serve_command
from local.s3 import LocalS3
from modeldeploy import naming

log = logging.getLogger("local.endpoint")

START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0
CONTAINER_TIMEOUT_SECONDS = 360.0  # SageMaker lets a model load for up to 360 s
# More container restarts than this within the window: something breaks every start; stay down.
RESTART_LIMIT, RESTART_WINDOW = 3, 60.0
_CODE_ROOT = Path(container.__file__).resolve().parents[1]


class EndpointFailure(Exception):
    """An InvokeEndpoint error as SageMaker answers it."""

    def __init__(self, status: int, code: str, message: str, **members: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.members = members

    def body(self) -> bytes:
        return json.dumps({"message": self.message, **self.members}).encode()


class ContainerDown(EndpointFailure):
    """The serving container is not running and cannot be restarted now."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "ServiceUnavailable", message)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ServingContainer:
    """`python -m container serve` as a child process on a loopback port, restarted (bounded)
    when it dies."""

    def __init__(
        self,
        log_path: Path,
        *,
        workers: int = 1,
        memory_budget_mb: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = 0
        self.log_path = log_path
        self.workers = workers
        self.memory_budget_mb = memory_budget_mb
        self.process: subprocess.Popen[bytes] | None = None
        # Called before a restart: the new container holds no models.
        self.on_restart: Callable[[], None] | None = None
        self._local = threading.local()
        self._generation = 0  # bumped on every start: connections to an older one are dropped
        self._lifecycle = threading.Lock()
        self._restarts: list[float] = []

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def revive(self) -> None:
        """Restart the container if its process has exited; ContainerDown if it may not (too
        many restarts) or does not come up. Cheap while it runs."""
        if self.running():
            return
        with self._lifecycle:
            if self.running():
                return
            code = self.process.returncode if self.process is not None else None
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW]
            if len(self._restarts) >= RESTART_LIMIT:
                raise ContainerDown(
                    f"the serving container exited (code {code}) after {RESTART_LIMIT} restarts "
                    f"in {RESTART_WINDOW:.0f} s; see the endpoint's container.log"
                )
            self._restarts.append(now)
            log.error("the serving container exited with code %s; restarting it", code)
            if self.on_restart is not None:
                self.on_restart()
            try:
                self.start()
            except RuntimeError as error:
                log.error("%s", error)
                raise ContainerDown(
                    "the serving container exited and did not restart; see the endpoint's "
                    "container.log"
                ) from None

    def start(self) -> None:
        # A new port each time: workers of a killed container may still hold the old one.
        self.port = _free_port(self.host)
        self._generation += 1
        command = serve_command(
            self.host,
            self.port,
            "--workers",
            str(self.workers),
            # As on AWS (the image sets MME_VERIFY_TARGET_MODEL): a model is unpickled only on an
            # invocation whose target model names its model file's sha256, and only if it has it.
            "--verify-target-model",
        )
        if self.memory_budget_mb:
            command += ["--memory-budget-mb", str(self.memory_budget_mb)]
        environment = {
            **os.environ,
            "SAGEMAKER_MULTI_MODEL": "true",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(_CODE_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as sink:
            self.process = subprocess.Popen(
                command, cwd=_CODE_ROOT, env=environment, stdout=sink, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the serving container did not start:\n{tail}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            return self.request("GET", "/ping")[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    def healthy(self) -> bool:
        """Running (restarted if it had died) and answering its own /ping."""
        self.revive()
        return self._healthy()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on this thread's keep-alive connection, reconnecting once if it dropped."""
        for attempt in range(2):
            connection = getattr(self._local, "connection", None)
            if connection is not None and self._local.generation != self._generation:
                connection.close()  # to a container that has since been replaced
                connection = None
            if connection is None:
                connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=CONTAINER_TIMEOUT_SECONDS
                )
                self._local.connection, self._local.generation = connection, self._generation
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
                continue
            if response.getheader("connection", "").lower() == "close":
                connection.close()
                self._local.connection = None
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")


class ModelCache:
    """Which target models the container holds, loaded on first use, evicted least recent first."""

    def __init__(self, serving: ServingContainer, s3: LocalS3, cache_dir: Path) -> None:
        self.serving = serving
        self.s3 = s3
        self.cache_dir = cache_dir
        self._loaded: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def _touch(self, name: str) -> bool:
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return True
            return False

    def ensure(self, name: str, artifact_uri: str) -> None:
        if self._touch(name):
            return
        with self._lock:
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:
            if self._touch(name):
                return
            local = self._fetch(name, artifact_uri)
            self._load(name, local)

    def forget(self, name: str) -> None:
        with self._lock:
            self._loaded.pop(name, None)

    def forget_all(self) -> None:
        with self._lock:
            self._loaded.clear()

    def _fetch(self, name: str, artifact_uri: str) -> Path:
        """Copy the artifact from the local S3 into the cache, as SageMaker downloads it."""
        try:
            source = self.s3.path(artifact_uri)
            found = source.is_file()
        except (InputError, ValueError, OSError):  # a key S3 could not hold, or too long a name
            found = False
        if not found:
            bucket, key = naming.split_s3_uri(artifact_uri)
            raise EndpointFailure(
                400,
                "ValidationError",
                f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure "
                "that there is an object located at the URL.",
            )
        # A digest, not the name: any target name gives a short, safe directory name.
        digest = hashlib.sha256(name.encode()).hexdigest()
        target = self.cache_dir / digest / "model.tar.gz"
        with replacing(target) as tmp:
            shutil.copyfile(source, tmp)
        return target

    def _load(self, name: str, artifact: Path) -> None:
        body = json.dumps({"model_name": name, "url": str(artifact)}).encode()
        while True:
            status, _, data = self.serving.request(
                "POST", "/models", body, {"Content-Type": "application/json"}
            )
            if status in (200, 409):  # 409: already loaded, by a load this cache lost track of
                with self._lock:
                    self._loaded[name] = None
                return
            if status == 507:
                victim = self._least_recent(except_name=name)
                if victim is not None:
                    log.info("evicting %s to make room for %s", victim, name)
                    self._unload(victim)
                    continue
            # The container may echo the artifact's path in the cache; the caller knows the name.
            message = data.decode(errors="replace").replace(str(artifact), name)
            raise EndpointFailure(
                424,
                "ModelError",
                f"Received client error ({status}) from the model while loading {name}",
                OriginalStatusCode=status,
                OriginalMessage=message,
            )

    def _least_recent(self, except_name: str) -> str | None:
        with self._lock:
            return next((n for n in self._loaded if n != except_name), None)

    def _unload(self, name: str) -> None:
        self.forget(name)
        self.serving.request("DELETE", f"/models/{quote(name, safe='')}")
