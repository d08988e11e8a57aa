"""The multi-model contract over HTTP, against a real `python -m container serve` with 2 workers.

Cases 1-15 replay the union of AWS's own container tests (reference/serving.md, section A.2);
the rest cover what the contract documents beyond them (pagination, headers, limits) and our
prediction API. Every request goes over loopback to the real server process.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving_support import Server, running_server, shared_artifacts

# Every test here starts processes or servers (tests/process_guard.py).
pytestmark = pytest.mark.integration

ZERO_ROW = ", ".join(["0.0"] * 30)
MIXED_RECORD = {"colour": "red", "size": 14.0, "code": "007", "weight": 0.5}


@pytest.fixture(scope="module")
def artifacts() -> dict[str, Path]:
    return shared_artifacts()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Path]
) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("serve"), "--workers", "2") as live:
        yield live


def load(server: Server, name: str, url: Path | str) -> tuple[int, Any]:
    return server.json("POST", "/models", {"model_name": name, "url": str(url)})


def invoke_csv(server: Server, name: str, text: str = ZERO_ROW) -> tuple[int, Any]:
    return server.json("POST", f"/models/{name}/invoke", text, headers={"Content-Type": "text/csv"})


def names(server: Server) -> list[str]:
    status, body = server.json("GET", "/models")
    assert status == 200
    return [model["modelName"] for model in body["models"]]


# -- the replay of AWS's container tests ------------------------------------------------------


def test_01_ping(server: Server) -> None:
    assert server.request("GET", "/ping")[0] == 200


def test_02_fresh_list_is_empty(server: Server) -> None:
    assert server.json("GET", "/models") == (200, {"models": []})


def test_03_delete_unknown_is_404(server: Server) -> None:
    assert server.json("DELETE", "/models/non-existing-model")[0] == 404


def test_04_invoke_unknown_is_404_with_mms_message(server: Server) -> None:
    status, body = invoke_csv(server, "half_plus_three")
    assert status == 404 and body["message"] == "Model not found: half_plus_three"


def test_05_to_08_load_invoke_unload_invoke(server: Server, artifacts: dict[str, Path]) -> None:
    assert load(server, "pickled-model-1", artifacts["cancer"]) == (
        200,
        {"status": "Workers scaled", "modelName": "pickled-model-1"},
    )
    status, body = invoke_csv(server, "pickled-model-1")
    assert status == 200 and body["predictions"][0]["label"] in ("benign", "malignant")
    status, body = server.json("DELETE", "/models/pickled-model-1")
    assert (status, body["status"]) == (200, 'Model "pickled-model-1" unregistered')
    status, body = invoke_csv(server, "pickled-model-1")
    assert status == 404 and body["message"] == "Model not found: pickled-model-1"


def test_09_two_models_load_invoke_unload(server: Server, artifacts: dict[str, Path]) -> None:
    assert load(server, "pickled-model-1", artifacts["cancer"])[0] == 200
    assert load(server, "pickled-model-2", artifacts["cancer"])[0] == 200
    assert invoke_csv(server, "pickled-model-1")[0] == 200
    assert invoke_csv(server, "pickled-model-2")[0] == 200
    assert server.json("DELETE", "/models/pickled-model-1")[0] == 200
    assert server.json("DELETE", "/models/pickled-model-2")[0] == 200


def test_10_duplicate_load_is_409(server: Server, artifacts: dict[str, Path]) -> None:
    assert load(server, "pickled-model-1", artifacts["cancer"])[0] == 200
    status, body = load(server, "pickled-model-1", artifacts["iris"])
    assert status == 409 and body["message"] == "Model pickled-model-1 is already registered."
    assert server.json("DELETE", "/models/pickled-model-1")[0] == 200


def test_11_12_list_in_name_order_and_after_unload(
    server: Server, artifacts: dict[str, Path]
) -> None:
    assert load(server, "resnet_152", artifacts["iris"])[0] == 200
    assert names(server) == ["resnet_152"]
    assert load(server, "resnet_18", artifacts["cancer"])[0] == 200
    _status, body = server.json("GET", "/models")
    assert body["models"] == [
        {"modelName": "resnet_152", "modelUrl": str(artifacts["iris"])},
        {"modelName": "resnet_18", "modelUrl": str(artifacts["cancer"])},
    ]
    assert server.json("DELETE", "/models/resnet_152")[0] == 200
    assert names(server) == ["resnet_18"]
    assert server.json("DELETE", "/models/resnet_18")[0] == 200


def test_13_load_missing_directory_is_404(server: Server) -> None:
    status, body = load(server, "banana", "/banana")
    assert status == 404 and "/banana" in body["message"]
    assert "banana" not in names(server)


def test_14_unload_twice_is_404(server: Server, artifacts: dict[str, Path]) -> None:
    assert load(server, "twice", artifacts["cancer"])[0] == 200
    assert server.json("DELETE", "/models/twice")[0] == 200
    assert server.json("DELETE", "/models/twice")[0] == 404


def test_15_unsupported_content_type_is_415(server: Server, artifacts: dict[str, Path]) -> None:
    assert load(server, "img", artifacts["cancer"])[0] == 200
    status, _, body = server.request(
        "POST", "/models/img/invoke", b"\x89PNG....", {"Content-Type": "application/x-image"}
    )
    assert status == 415 and b"text/csv or application/json" in body
    assert server.json("DELETE", "/models/img")[0] == 200


# -- beyond the replay: the rest of the documented contract -----------------------------------


def test_pagination_walks_every_model_once_in_order(
    server: Server, artifacts: dict[str, Path]
) -> None:
    wanted = [f"page-{i:02d}" for i in range(7)]
    for name in reversed(wanted):
        assert load(server, name, artifacts["cancer"])[0] == 200
    seen, token, pages = [], None, 0
    while True:
        query = "/models?limit=3" + (f"&next_page_token={token}" if token else "")
        status, body = server.json("GET", query)
        assert status == 200 and len(body["models"]) <= 3
        seen += [m["modelName"] for m in body["models"]]
        pages += 1
        token = body.get("nextPageToken")
        if token is None:
            break
    assert seen == wanted and pages == 3
    assert server.json("GET", "/models?next_page_token=x")[0] == 400
    for name in wanted:
        assert server.json("DELETE", f"/models/{name}")[0] == 200


def test_model_names_are_opaque_keys(server: Server, artifacts: dict[str, Path]) -> None:
    name = "tenant 42/model.tar.gz?v=1"
    quoted = "tenant%2042%2Fmodel.tar.gz%3Fv%3D1"
    assert load(server, name, artifacts["cancer"])[0] == 200
    assert server.json("GET", f"/models/{quoted}")[1]["modelName"] == name
    assert invoke_csv(server, quoted)[0] == 200
    assert server.json("DELETE", f"/models/{quoted}")[0] == 200


def test_describe_reports_signature_and_version(server: Server, artifacts: dict[str, Path]) -> None:
    assert load(server, "described", artifacts["iris"])[0] == 200
    status, body = server.json("GET", "/models/described")
    signature = orjson.loads((artifacts["iris"] / "signature.json").read_bytes())
    assert status == 200
    assert body["modelVersion"] == signature["model_sha256"]
    assert body["algorithm"] == "lightgbm" and body["classes"] == [0, 1, 2]
    assert body["features"] == signature["schema"]["features"]
    assert body["predictPath"] == "numpy-preprocess+lightgbm-booster"  # chosen at load
    assert server.json("DELETE", "/models/described")[0] == 200
    assert server.json("GET", "/models/described")[0] == 404


def test_headers_custom_attributes_echo_target_model_and_unknown_ignored(
    server: Server, artifacts: dict[str, Path]
) -> None:
    assert load(server, "headers", artifacts["cancer"])[0] == 200
    status, headers, _body = server.request(
        "POST",
        "/models/headers/invoke",
        ZERO_ROW,
        {
            "Content-Type": "text/csv",
            "X-Amzn-SageMaker-Custom-Attributes": "trace=abc;tenant=7",
            "X-Amzn-SageMaker-Target-Model": "breast-cancer/3.tar.gz",
            "X-Amzn-SageMaker-Inference-Id": "id-1",
            "X-Something-Else": "whatever",
        },
    )
    assert status == 200
    assert headers["x-amzn-sagemaker-custom-attributes"] == "trace=abc;tenant=7"
    _, headers, _ = server.request(
        "POST", "/models/headers/invoke", ZERO_ROW, {"Content-Type": "text/csv"}
    )
    assert "x-amzn-sagemaker-custom-attributes" not in headers
    assert server.json("DELETE", "/models/headers")[0] == 200


def test_json_rows_records_and_csv_agree(server: Server, artifacts: dict[str, Path]) -> None:
    assert load(server, "mixed", artifacts["mixed"])[0] == 200
    order = ["colour", "size", "code", "weight"]
    row = [MIXED_RECORD[name] for name in order]
    by_records = server.json("POST", "/models/mixed/invoke", [MIXED_RECORD, MIXED_RECORD])[1]
    by_rows = server.json("POST", "/models/mixed/invoke", [row, row])[1]
    csv_body = "code,colour,size,weight\n007,red,14.0,0.5\n007,red,14.0,0.5\n"
    by_csv = invoke_csv(server, "mixed", csv_body)[1]
    assert by_records == by_rows == by_csv
    prediction = by_rows["predictions"][0]
    assert set(prediction) == {"label", "probabilities"}
    assert set(prediction["probabilities"]) == {"no", "yes"} == set(by_rows["classes"])
    assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-6
    assert prediction["label"] == max(
        prediction["probabilities"], key=prediction["probabilities"].get
    )
    signature = orjson.loads((artifacts["mixed"] / "signature.json").read_bytes())
    assert by_rows["model_version"] == signature["model_sha256"]
    assert server.json("DELETE", "/models/mixed")[0] == 200


def test_csv_output_when_accepted(server: Server, artifacts: dict[str, Path]) -> None:
    assert load(server, "csv-out", artifacts["iris"])[0] == 200
    status, headers, body = server.request(
        "POST",
        "/models/csv-out/invoke",
        "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
        {"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert status == 200 and headers["content-type"].startswith("text/csv")
    lines = body.decode().splitlines()
    assert lines[0] == "label,0,1,2" and len(lines) == 3
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "2"]
    assert (
        server.request(
            "POST",
            "/models/csv-out/invoke",
            "1,2,3,4",
            {"Content-Type": "text/csv", "Accept": "image/png"},
        )[0]
        == 406
    )
    assert server.json("DELETE", "/models/csv-out")[0] == 200


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        ("1,2,3", "text/csv", 400, "row 1 has 3 values but the model takes 30 features"),
        ("[[1, 2]]", "application/json", 400, "row 1 has 2 values"),
        ('[{"nope": 1}]', "application/json", 400, "lacks feature(s) mean radius"),
        (ZERO_ROW.replace("0.0", "abc", 1), "text/csv", 400, "feature 'mean radius' is numeric"),
        ("{", "application/json", 400, "not valid JSON"),
        (ZERO_ROW, "text/plain", 415, "not supported"),
        (ZERO_ROW, "", 415, "not supported"),
    ],
)
def test_bad_invocations_get_4xx_with_the_reason(
    server: Server,
    artifacts: dict[str, Path],
    body: str,
    content_type: str,
    status: int,
    reason: str,
) -> None:
    if "bad" not in names(server):
        assert load(server, "bad", artifacts["cancer"])[0] == 200
    headers = {"Content-Type": content_type} if content_type else {}
    got, _, answer = server.request("POST", "/models/bad/invoke", body, headers)
    assert got == status
    parsed = orjson.loads(answer)
    assert parsed["code"] == status and reason in parsed["message"]


def test_body_over_6_mb_is_413_and_the_server_carries_on(server: Server) -> None:
    if "bad" not in names(server):
        pytest.skip("needs the model loaded by the previous test")
    big = b"0.0," * (6 * 1024 * 1024 // 4 + 10)
    status, _, body = server.request(
        "POST", "/models/bad/invoke", big, {"Content-Type": "text/csv"}
    )
    assert status == 413 and b"6291456" in body
    assert invoke_csv(server, "bad")[0] == 200


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"url": "/x"}, 400, "Parameter model_name is required."),
        ({"model_name": "x"}, 400, "Parameter url is required."),
        ([1], 400, "model_name"),
    ],
)
def test_bad_load_requests_are_400(server: Server, body: Any, status: int, reason: str) -> None:
    got, answer = server.json("POST", "/models", body)
    assert got == status and reason in answer["message"]


def test_corrupt_artifact_is_422_and_nothing_is_registered(
    server: Server, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(artifacts["cancer"], damaged)
    with (damaged / "model.joblib").open("ab") as stream:
        stream.write(b"tampered")
    status, body = load(server, "damaged", damaged)
    assert status == 422 and "checksum does not match" in body["message"]
    assert "damaged" not in names(server)


def test_model_tar_gz_directory_is_unpacked(
    server: Server, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    from container.artifact import pack

    pack(artifacts["iris"], tmp_path / "packed" / "model.tar.gz")
    assert load(server, "packed", tmp_path / "packed")[0] == 200
    assert invoke_csv(server, "packed", "5.1,3.5,1.4,0.2")[0] == 200
    assert server.json("DELETE", "/models/packed")[0] == 200


def test_concurrent_requests_get_their_own_answers(
    server: Server, artifacts: dict[str, Path]
) -> None:
    assert load(server, "concurrent", artifacts["iris"])[0] == 200
    samples = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]] * 16
    expected = {
        tuple(row): server.json("POST", "/models/concurrent/invoke", [row])[1]["predictions"]
        for row in samples[:3]
    }

    def call(row: list[float]) -> tuple[tuple[float, ...], Any]:
        client = Server(server.process, server.port, server.log)
        return tuple(row), client.json("POST", "/models/concurrent/invoke", [row])[1]["predictions"]

    with ThreadPoolExecutor(16) as pool:
        for row, predictions in pool.map(call, samples):
            assert predictions == expected[row]
    assert server.json("DELETE", "/models/concurrent")[0] == 200


def worker_rss(server: Server) -> int:
    total = 0
    for pid in server.worker_pids():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def test_delete_really_frees_the_memory(server: Server, artifacts: dict[str, Path]) -> None:
    before = worker_rss(server)
    assert load(server, "bulky", artifacts["bulky"])[0] == 200
    loaded = worker_rss(server)
    assert loaded - before > 20 * 2**20  # two workers each hold a forest of tens of MB
    assert server.json("DELETE", "/models/bulky")[0] == 200
    after = worker_rss(server)
    assert after - before < 0.25 * (loaded - before)


# -- fuzzing: no request can cause a 5xx or stop the server -----------------------------------

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
content_types = st.sampled_from(
    ["text/csv", "application/json", "text/csv; charset=utf-8", "application/json;x=1", "", "*/*"]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # orjson serialises 64-bit integers only
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=40,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(orjson.dumps),
    st.lists(
        st.lists(st.sampled_from(["1", "x", "", "NA", "1e999", '"', " 2"]), max_size=6), max_size=5
    ).map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=bodies,
    content_type=content_types,
    accept=st.sampled_from(["", "text/csv", "application/json", "*/*", "x/y"]) | header_text,
    attributes=header_text,
    model=st.sampled_from(["fuzz-numeric", "fuzz-mixed", "not-loaded"]),
)
def test_fuzzed_invocations_never_5xx(
    fuzz_server: Server, body: bytes, content_type: str, accept: str, attributes: str, model: str
) -> None:
    headers = {"Accept": accept, "X-Amzn-SageMaker-Custom-Attributes": attributes}
    if content_type:
        headers["Content-Type"] = content_type
    status, _, answer = fuzz_server.request("POST", f"/models/{model}/invoke", body, headers)
    assert status < 500, answer
    if status >= 400:
        assert orjson.loads(answer)["message"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    path=st.sampled_from(["/models", "/models/x", "/ping", "/invocations", "/nope", "/models/%ZZ"]),
    query=st.sampled_from(["", "?limit=0", "?limit=abc", "?next_page_token=-1", "?limit=1000"]),
    body=bodies,
)
def test_fuzzed_management_calls_never_5xx(
    fuzz_server: Server, method: str, path: str, query: str, body: bytes
) -> None:
    status, _, _ = fuzz_server.request(
        method, path + query, body, {"Content-Type": "application/json"}
    )
    assert status < 500


@pytest.fixture(scope="module")
def fuzz_server(server: Server, artifacts: dict[str, Path]) -> Iterator[Server]:
    for name, artifact in (("fuzz-numeric", "cancer"), ("fuzz-mixed", "mixed")):
        if name not in names(server):
            assert load(server, name, artifacts[artifact])[0] == 200
    yield server
    assert server.alive() and invoke_csv(server, "fuzz-numeric")[0] == 200


def test_a_killed_worker_is_replaced_with_every_model(
    server: Server, artifacts: dict[str, Path]
) -> None:
    assert load(server, "survivor", artifacts["cancer"])[0] == 200
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        if victim not in pids and len(pids) == 2:
            break
        time.sleep(0.2)
    assert victim not in server.worker_pids() and len(server.worker_pids()) == 2
    # A replacement accepts connections only once it holds every model, so no 404 can slip in.
    for _ in range(20):  # new connections spread over both workers
        client = Server(server.process, server.port, server.log)
        assert invoke_csv(client, "survivor")[0] == 200
        assert "survivor" in names(client)
