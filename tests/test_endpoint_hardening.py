"""The local endpoint and the invoker's HTTP adapter against hostile requests and a dying
container (issue 13, items 4 and 5): SageMaker's 400 ValidationError for target names it would
refuse, JSON 405 for other methods, a malformed Content-Length answered at once, a stalled
client dropped, no answer naming a file on this machine, and a killed serving container
restarted, with `/ping` healthy only while it really serves.

One endpoint (one container process) for the module; the test that kills it runs last.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

import local.endpoint as endpoint_module
import local.loopback
import local.serving_container as serving_container
from local.endpoint import LocalEndpoint, local_invoker, runtime_client
from local.invoker_http import InvokerHTTPServer
from modeldeploy import naming
from tests.deploy_support import PROJECT, artifacts, local_backend, signature_sha256

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
ENDPOINT = f"{PROJECT}-dev"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hardening-home")
    backend = local_backend(root)
    backend.register("iris", artifacts()["iris"])
    backend.deployer.deploy("dev", ["iris"]).raise_for_failures()
    return root


@pytest.fixture(scope="module")
def running(home: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(home, PROJECT) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def invoker_url(home: Path, running: LocalEndpoint) -> Iterator[str]:
    invokers = {"dev": local_invoker(home, "dev", running.url, PROJECT)}
    server = InvokerHTTPServer(("127.0.0.1", 0), invokers).start()
    yield server.url
    server.stop()


def iris_target(home: Path) -> str:
    return local_backend(home).deployer.read_table("dev").routes["iris"].target_model


def raw(url: str, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (http.client would refuse to send most of these requests)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def invoke(url: str, target: str, body: bytes = b"[[5.1, 3.5, 1.4, 0.2]]") -> tuple[int, Any]:
    path = f"/endpoints/{ENDPOINT}/invocations"
    request = (
        (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        + b"X-Amzn-SageMaker-Target-Model: "
        + target.encode("latin-1")
        + b"\r\n\r\n"
        + body
    )
    status, headers, data = raw(url, request)
    return status, (headers, json.loads(data))


def server_paths(home: Path) -> list[str]:
    """What no answer may contain: this machine's home, cache and scratch directories."""
    return [str(home), str(home.resolve()), "/tmp/", "mme-serve-", "cache/"]


def test_the_target_name_limits_are_sagemakers() -> None:
    shape = (
        botocore.session.get_session()
        .get_service_model("sagemaker-runtime")
        .operation_model("InvokeEndpoint")
        .input_shape.members["TargetModel"]
    )
    assert shape.metadata["max"] == endpoint_module.MAX_TARGET_MODEL_CHARS
    assert shape.metadata["min"] == 1
    assert (
        (
            botocore.session.get_session()
            .get_service_model("sagemaker-runtime")
            .operation_model("InvokeEndpoint")
            .input_shape.members["Body"]
            .metadata["max"]
        )
        == endpoint_module.MAX_BODY_BYTES
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    "target",
    [
        "../../../../etc/passwd",
        "iris/../iris/x.tar.gz",
        "./iris.tar.gz",
        "iris//x.tar.gz",
        "iris/x\x00.tar.gz",
        " leading-space",
        "x" * 1025,
        "é.tar.gz",
    ],
)
def test_target_names_sagemaker_refuses_get_its_validation_error(
    running: LocalEndpoint, home: Path, target: str
) -> None:
    status, (headers, body) = invoke(running.url, target)
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationError", body
    assert not any(path in body["message"] for path in server_paths(home))


@pytest.mark.integration
def test_a_valid_but_absent_long_target_is_a_missing_artifact(
    running: LocalEndpoint, home: Path
) -> None:
    # 1024 characters, 300 in one segment: too long a file name for the local S3's filesystem.
    target = "iris/" + "y" * 300 + "/" + "z" * (1024 - 306)
    status, (_, body) = invoke(running.url, target)
    assert status == 400 and "Failed to download model data" in body["message"]
    assert not any(path in body["message"] for path in server_paths(home))


@pytest.mark.integration
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "BREW"])
def test_other_methods_get_a_json_405(
    running: LocalEndpoint, invoker_url: str, method: str
) -> None:
    for url, path in ((running.url, f"/endpoints/{ENDPOINT}/invocations"), (invoker_url, "/dev")):
        status, headers, data = raw(url, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status == 405, data
        assert headers["content-type"] == "application/json"
        assert json.loads(data)["message"]


@pytest.mark.integration
def test_head_gets_405_without_a_body(running: LocalEndpoint) -> None:
    connection = http.client.HTTPConnection(*running.url.removeprefix("http://").split(":"))
    connection.request("HEAD", f"/endpoints/{ENDPOINT}/invocations")
    response = connection.getresponse()
    assert response.status == 405 and response.read() == b""
    connection.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("length", "status"), [("abc", 400), ("-5", 400), ("1e3", 400), ("99999999999", 413)]
)
def test_a_malformed_content_length_is_answered_at_once(
    running: LocalEndpoint, invoker_url: str, length: str, status: int
) -> None:
    for url, path in ((running.url, f"/endpoints/{ENDPOINT}/invocations"), (invoker_url, "/dev")):
        request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}"
        started = time.monotonic()
        got, headers, data = raw(url, request.encode(), timeout=5)
        assert got == status and json.loads(data)["message"]
        assert headers.get("connection") == "close"
        assert time.monotonic() - started < 5


@pytest.mark.integration
def test_a_client_that_stops_mid_body_is_dropped(
    running: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local.loopback.JSONRequestHandler, "timeout", 1.0)
    host, port = running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /endpoints/{ENDPOINT}/invocations HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 100\r\n\r\n[[5.1".encode()
        )
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, not held
        assert time.monotonic() - started < 5


@pytest.mark.integration
def test_a_load_failure_names_the_model_not_the_cache(
    running: LocalEndpoint, home: Path, invoker_url: str, tmp_path: Path
) -> None:
    from tests.artifact_faults import not_a_model

    backend = local_backend(home)
    broken = not_a_model(artifacts()["iris"], tmp_path / "b.tar.gz")
    # Named as the deploy names it (the model file's sha256), so the load gets as far as it can.
    target = naming.target_model("iris", 99, signature_sha256(broken) or "")
    key = naming.artifact_key("dev", target)
    backend.storage.upload(broken, f"s3://{backend.bucket}/{key}")

    status, (headers, body) = invoke(running.url, target)

    assert status == 424 and headers["x-amzn-errortype"] == "ModelError"
    assert "no predict_proba" in body["OriginalMessage"]
    assert f"{ENDPOINT}/{target}" in body["OriginalMessage"]
    assert not any(path in json.dumps(body) for path in server_paths(home))


@pytest.mark.integration
def test_a_killed_container_is_restarted_and_ping_never_lies(
    running: LocalEndpoint, home: Path, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    client = runtime_client(running.url)
    target = iris_target(home)

    def predict() -> int:
        response = client.invoke_endpoint(
            EndpointName=ENDPOINT,
            TargetModel=target,
            ContentType="application/json",
            Body=json.dumps([IRIS_ROW]),
        )
        return int(json.loads(response["Body"].read())["predictions"][0]["label"])

    def ping() -> tuple[int, Any]:
        host, port = running.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        connection.request("GET", "/ping")
        response = connection.getresponse()
        answer = response.status, json.loads(response.read())
        connection.close()
        return answer

    def kill_container() -> int:
        process = running.serving.process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        return process.pid

    assert predict() == 0
    caplog.set_level(logging.INFO)
    killed = kill_container()

    assert predict() == 0  # restarted, the model loaded again, on the request itself
    assert running.serving.process is not None and running.serving.process.pid != killed
    assert ping() == (200, {"status": "Healthy"})
    assert not [r for r in caplog.records if r.exc_info], "a request logged a traceback"
    assert "restarting it" in caplog.text

    # Past the restart limit the container stays down, and the endpoint says so.
    monkeypatch.setattr(serving_container, "RESTART_LIMIT", 1)
    kill_container()
    status, body = ping()
    assert status == 503 and body["status"] == "Unhealthy" and "restarts" in body["message"]
    with pytest.raises(ClientError) as raised:
        predict()
    assert raised.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert not [r for r in caplog.records if r.exc_info], "a request logged a traceback"
