"""Fuzzing the invoker (behind its local HTTP adapter, the Lambda handler's code) and the local
InvokeEndpoint endpoint over real HTTP, with the real serving container behind both (issue 13).

Bounded by hypothesis' max_examples. Whatever arrives, the answer is JSON; no 5xx but the
documented 502 and 503 (and, from the endpoint, no container failure wrapped in a ModelError);
and no answer names a path on this machine that the request did not itself contain.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.endpoint import LocalEndpoint, local_invoker
from local.invoker_http import InvokerHTTPServer
from tests.deploy_support import PROJECT, artifacts, local_backend
from tests.serving_support import REPO

# Every test here starts processes or servers (tests/process_guard.py).
pytestmark = pytest.mark.integration

ENDPOINT = f"{PROJECT}-dev"
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-home")
    backend = local_backend(root)
    backend.register("iris", artifacts()["iris"])
    backend.register("breast-cancer", artifacts()["cancer-0"])
    backend.deployer.deploy("dev", ["iris", "breast-cancer"]).raise_for_failures()
    return root


@pytest.fixture(scope="module")
def servers(home: Path) -> Iterator[tuple[str, str, list[str]]]:
    with LocalEndpoint(home, PROJECT) as endpoint:
        invokers = {"dev": local_invoker(home, "dev", endpoint.url, PROJECT)}
        adapter = InvokerHTTPServer(("127.0.0.1", 0), invokers).start()
        routes = local_backend(home).deployer.read_table("dev").routes
        try:
            yield endpoint.url, adapter.url, sorted(r.target_model for r in routes.values())
        finally:
            adapter.stop()


def send(
    url: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(key, value.encode("latin-1", "replace"))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_no_server_path(home: Path, answer: bytes, request: bytes) -> None:
    text = answer.decode("utf-8", "replace")
    for path in (str(home.resolve()), str(REPO), "mme-serve-", "/tmp/"):
        assert path not in text or path in request.decode("utf-8", "replace"), text


scalars = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.text(max_size=8)
    | st.booleans()
    | st.none()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
rows = (
    st.lists(st.lists(scalars, min_size=0, max_size=35), min_size=0, max_size=4)
    | st.lists(st.dictionaries(st.sampled_from(["sepal_length", "x", ""]), scalars), max_size=3)
    | st.text(max_size=200)
    | values
)
documents = st.fixed_dictionaries(
    {"dataset": st.sampled_from(["iris", "breast-cancer", "wine", ""]) | st.text(max_size=20)},
    optional={"rows": rows, "extra": values},
).map(lambda d: json.dumps(d).encode())
raw_text = st.sampled_from(
    [b"", b"{", b"[]", b"null", b'{"dataset": "iris", "rows": [[1e999]]}', b"\xff\xfe", b"[" * 5000]
)
bodies = documents | st.binary(max_size=300) | raw_text


@SETTINGS
@given(
    body=bodies,
    method=st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    purpose=st.sampled_from(["traffic", "smoke", "x", ""]),
    content_type=st.sampled_from(["application/json", "text/csv", "", "x/y; charset=zz"]),
    path=st.sampled_from(["/dev", "/dev/x?y=1", "/prod", "/", "/%00"]),
)
def test_the_invoker_answers_anything_without_a_bare_5xx(
    servers: tuple[str, str, list[str]],
    home: Path,
    body: bytes,
    method: str,
    purpose: str,
    content_type: str,
    path: str,
) -> None:
    _, invoker_url, _ = servers
    headers = {"Content-Type": content_type, "x-mme-purpose": purpose}
    status, answer_headers, answer = send(invoker_url, method, path, body, headers)
    assert status < 500 or status in (502, 503), answer
    assert answer_headers["content-type"] == "application/json"
    document: dict[str, Any] = json.loads(answer)
    if status >= 400:
        assert document["message"]
    if status == 502:  # the endpoint's fault, never the model crashing on a caller's rows
        assert "status 500" not in document["message"], document
    assert_no_server_path(home, answer, body)


targets = st.text(
    st.characters(min_codepoint=0, max_codepoint=0x2FF, exclude_characters="\r\n"),
    min_size=0,
    max_size=40,
) | st.sampled_from(["iris", "../iris", "a/./b", "x" * 1100, "iris/1-x.tar.gz"])


@SETTINGS
@given(
    body=bodies | st.sampled_from([b"5.1,3.5,1.4,0.2", b"[[5.1,3.5,1.4,0.2]]"]),
    target=targets,
    use_real_target=st.booleans(),
    content_type=st.sampled_from(["application/json", "text/csv", "text/plain", ""]),
    accept=st.sampled_from(["application/json", "text/csv", "*/*", "image/png", ""]),
    endpoint=st.sampled_from([ENDPOINT, f"{PROJECT}-prod", "nope", "%2e%2e"]),
)
def test_the_endpoint_answers_anything_as_sagemaker_would(
    servers: tuple[str, str, list[str]],
    home: Path,
    body: bytes,
    target: str,
    use_real_target: bool,
    content_type: str,
    accept: str,
    endpoint: str,
) -> None:
    endpoint_url, _, real_targets = servers
    if use_real_target:
        target = real_targets[len(target) % len(real_targets)]
    headers = {"Content-Type": content_type, "Accept": accept}
    if target:
        headers["X-Amzn-SageMaker-Target-Model"] = target
    status, answer_headers, answer = send(
        endpoint_url, "POST", f"/endpoints/{endpoint}/invocations", body, headers
    )
    assert status < 500 or status in (502, 503), answer
    if status != 200:
        document = json.loads(answer)
        assert document["message"] and answer_headers["x-amzn-errortype"]
        if status == 424:  # a ModelError: the container refused, it did not fail
            assert int(document["OriginalStatusCode"]) < 500, document
    assert_no_server_path(home, answer, body + target.encode("utf-8", "replace"))
