"""`mme ui`: every page over a real local run, approvals through `local.approval`, the
cross-site guard, the `ui` command, and a real headless Chromium clicking Approve.

The browser test needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
`/usr/bin/chromedriver`); without them it skips, unless MME_REQUIRE_BROWSER=1 (CI) makes it
fail. MME_UI_SCREENSHOTS=DIR also saves the pages it opens as PNG files in DIR.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from local.cli import Settings
from local.cli import main as mme_main
from local.home import LocalHome
from modelbuild import naming

pytest.importorskip("starlette", reason="the ui extra (starlette, jinja2) is not installed")
from starlette.testclient import TestClient

from local.ui.app import create_app
from local.ui.cli import MISSING_EXTRA, ui
from local.ui.server import bind, serving

# Every test here starts processes or servers (tests/process_guard.py).
pytestmark = pytest.mark.integration

PROJECT = naming.DEFAULT_PROJECT_NAME
GROUP = naming.model_package_group_name(PROJECT, "wine")
BASE = "http://127.0.0.1:8765"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DRIFT_RUN = "20261122T060000Z"


# ---------------------------------------------------------------------------- state


def _write_drift(home: LocalHome, drift_dir: Path) -> None:
    """A prod drift report for wine, written and uploaded the way `mme endpoint drift
    --upload-reports` does (drift_job's file layout, plots and upload)."""
    from local.deploy_store import LocalStorage
    from modeldeploy import naming as deploy_naming
    from modeldeploy.drift import DriftReport, FeatureDrift
    from modeldeploy.drift_job import REPORT_FILE, DriftOutcome, upload
    from modeldeploy.drift_plots import write_plots

    common = {"baseline_missing_share": 0.0, "live_missing_share": 0.0}
    features = [
        FeatureDrift(
            name="alcohol", kind="numeric", status="drift", rows=150, psi=0.41, distance=0.3,
            p_value=0.0001, labels=["<= 12", "(12, 13]", "> 13"],
            baseline_shares=[0.3, 0.4, 0.3], live_shares=[0.1, 0.2, 0.7], **common,
        ),
        FeatureDrift(
            name="colour", kind="categorical", status="ok", rows=150, psi=0.02, distance=0.05,
            p_value=None, labels=["red", "blue", "<other>"], baseline_shares=[0.5, 0.5, 0.0],
            live_shares=[0.45, 0.5, 0.05], unseen={"purple": 7}, unseen_rows=7, **common,
        ),
    ]  # fmt: skip
    context = {"stage": "prod", "target_model": "wine/1-x.tar.gz", "model_package_version": 1,
               "requests": 150, "generated_at": "2026-11-22T06:00:00+00:00"}  # fmt: skip
    report = DriftReport("wine", features, 150, context=context)
    directory = drift_dir / "prod" / "wine"
    directory.mkdir(parents=True)
    report_path = directory / REPORT_FILE
    report_path.write_text(report.to_json() + "\n")
    outcome = DriftOutcome(report, [report_path, *write_plots(report, directory)])
    destination = deploy_naming.drift_report_uri(
        deploy_naming.local_bucket(PROJECT), "prod", DRIFT_RUN
    )
    upload(LocalStorage(home.s3), outcome, drift_dir / "prod", destination)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where wine's pipeline ran and registered version 1, plus a drift report."""
    root = tmp_path_factory.mktemp("ui-home")
    result = CliRunner().invoke(
        mme_main,
        ["--home", str(root / "home"), "run", "wine", "--max-jobs", "2", "--cv-folds", "2",
         "--workers", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _write_drift(LocalHome(root / "home"), root / "drift")
    return root


@pytest.fixture
def home(trained: Path, tmp_path: Path) -> LocalHome:
    """A copy of the trained state, so each test's approvals start from a pending version."""
    shutil.copytree(trained, tmp_path / "state")
    return LocalHome(tmp_path / "state" / "home")


def drift_dir(home: LocalHome) -> Path:
    return home.root.parent / "drift"


@pytest.fixture
def client(home: LocalHome) -> TestClient:
    return TestClient(create_app(home, PROJECT, drift_dir=drift_dir(home)), base_url=BASE)


def token(client: TestClient) -> str:
    return str(client.app.state.ui.token)  # type: ignore[attr-defined]


def alert(page: str) -> str:
    found = re.search(r'role="alert">([^<]*)<', page)
    assert found, page
    return found[1].replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">")


def visible(page: str) -> str:
    """The page's text without tags or repeated whitespace."""
    text = re.sub(r"<[^>]+>", " ", page).replace("&#39;", "'").replace("&amp;", "&")
    return re.sub(r"\s+", " ", text)


# ---------------------------------------------------------------------------- pages


def test_the_registry_lists_each_version_with_status_algorithm_and_holdout(
    client: TestClient, home: LocalHome
) -> None:
    package = home.registry.get(GROUP, 1)
    report = json.loads(
        home.s3.get_bytes(package.model_metrics["ModelQuality"]["Statistics"]["S3Uri"])
    )
    holdout = f"{report['register_metric']['name']} {report['register_metric']['value']:.4f}"

    response = client.get("/models")
    assert response.status_code == 200
    row = re.search(r'<tr id="wine-v1">.*?</tr>', response.text, re.S)
    assert row, response.text
    text = visible(row[0])
    assert "v1" in text and "PendingManualApproval" in text
    assert package.customer_metadata["algorithm"] in text and holdout in text
    assert f'value="{token(client)}"' in row[0]  # its forms carry the token
    assert client.get("/", follow_redirects=False).headers["location"].endswith("/models")


def test_a_version_page_shows_the_report_and_serves_its_plots(
    client: TestClient, home: LocalHome
) -> None:
    from local.report_cli import describe

    view = describe(home, PROJECT, "wine", "1")
    page = client.get("/models/wine/v1")
    assert page.status_code == 200
    text = visible(page.text)
    register = view.report["register_metric"]
    assert f"{register['name']} (registration) {register['value']:.4f}" in text
    assert f"accuracy {view.report['metrics']['accuracy']:.4f}" in text
    assert view.report["importance"]["features"][0]["name"] in text
    sources = re.findall(r'<img src="([^"]+)"', page.text)
    assert sources and len(sources) == len(view.plots)
    for source, plot in zip(sources, view.plots, strict=True):
        image = client.get(source)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content == plot.read_bytes()
    # A name that is not one of the version's plots is not a path into the state.
    assert client.get("/models/wine/1/plots/..%2F..%2Fregistry.sqlite").status_code == 404
    assert client.get("/models/wine/1/plots/evaluation.json").status_code == 404


def test_executions_show_steps_durations_results_logs_and_trials(
    client: TestClient, home: LocalHome
) -> None:
    (record,) = home.executions.list()
    listing = client.get("/executions")
    assert listing.status_code == 200
    assert record.id in listing.text and "registered version 1" in visible(listing.text)

    page = client.get(f"/executions/{record.id}")
    assert page.status_code == 200
    for step in record.steps:
        row = re.search(rf'<tr id="step-{step.name}">.*?</tr>', page.text, re.S)
        assert row, step.name
        assert step.status in row[0] and step.type in row[0]
    directory = home.executions.directory(record.id)
    logs = re.findall(r'href="(http://[^"]+/logs/[^"]+)"', page.text)
    assert len(logs) == sum(len(step.logs) for step in record.steps) > 0
    listed = [log for step in record.steps for log in step.logs]
    for link, log in zip(logs, listed, strict=True):
        shown = client.get(link)
        assert shown.status_code == 200 and shown.text == (directory / log).read_text()
    assert client.get(f"/executions/{record.id}/logs/..%2Fexecution.json").status_code == 404

    tune = record.step(naming.Steps.TUNE)
    assert tune is not None
    trials = client.get(f"/executions/{record.id}/trials")
    assert trials.status_code == 200
    for summary in tune.properties["TrainingJobSummaries"]:
        assert summary["TrainingJobDefinitionName"] in trials.text

    missing = client.get("/executions/zzzzzzzzzzzz")
    assert missing.status_code == 404 and "no pipeline execution 'zzzzzzzzzzzz'" in alert(
        missing.text
    )


def test_a_failed_step_shows_its_failure_reason(client: TestClient, home: LocalHome) -> None:
    (record,) = home.executions.list()
    path = home.executions.directory(record.id) / "execution.json"
    raw = json.loads(path.read_text())
    raw.update(status="Failed", failure_reason="Step Evaluate failed: <bad> & worse")
    raw["steps"][-1].update(status="Failed", failure_reason="the holdout is <empty>")
    path.write_text(json.dumps(raw))
    page = client.get(f"/executions/{record.id}")
    assert "Step Evaluate failed: &lt;bad&gt; &amp; worse" in page.text
    assert "the holdout is &lt;empty&gt;" in page.text and "<bad>" not in page.text


def test_routing_and_drift_pages(client: TestClient, home: LocalHome) -> None:
    routing = client.get("/routing")
    assert routing.status_code == 200
    assert "Nothing deployed to dev yet" in routing.text
    assert "s3://mme-local-artifacts/prod/routing/live.json" in routing.text

    listing = client.get("/drift")
    assert listing.status_code == 200
    text = visible(listing.text)
    # The uploaded run in local S3, and the latest run in the drift output directory.
    assert f"{DRIFT_RUN} prod wine drift 150 0.410 alcohol colour: purple" in text
    assert "local prod wine drift 150 0.410" in text
    for source in (DRIFT_RUN, "local"):
        report = client.get(f"/drift/{source}/prod/wine")
        assert report.status_code == 200
        assert "purple (7)" in report.text
        plots = re.findall(r'<img src="([^"]+)"', report.text)
        assert any(p.endswith("/psi.png") for p in plots)
        for plot in plots:
            image = client.get(plot)
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert client.get("/drift/local/prod/banknote").status_code == 404


def test_a_missing_report_is_named_on_the_version_page(client: TestClient, home: LocalHome) -> None:
    package = home.registry.get(GROUP, 1)
    report = home.s3.path(package.model_metrics["ModelQuality"]["Statistics"]["S3Uri"])
    report.unlink()
    page = client.get("/models/wine/1")
    assert page.status_code == 200
    assert "the evaluation report is missing" in page.text and str(report) in page.text


# ---------------------------------------------------------------------------- approval


def _post(client: TestClient, path: str, **fields: str) -> Any:
    return client.post(path, data=fields, headers={"origin": BASE})


def test_approve_goes_through_local_approval_and_deploys_to_dev(
    client: TestClient, home: LocalHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import local.approval

    calls = []
    real = local.approval.decide

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(local.approval, "decide", spy)
    before = home.registry.events()

    response = _post(
        client, "/models/wine/1/approve", csrf_token=token(client), description="good <enough>",
        deploy="on",
    )  # fmt: skip

    assert response.status_code == 200, response.text
    ((args, kwargs),) = calls
    assert args[1:] == (PROJECT, "wine", 1, "Approved", "good <enough>") and kwargs["deploy"]
    package = home.registry.get(GROUP, 1)
    assert package.approval_status == "Approved"
    assert package.approval_description == "good <enough>"
    (event,) = home.registry.events(before[-1].id)
    assert event.approval_status == "Approved" and event.detail["ModelPackageVersion"] == 1
    text = visible(response.text)
    assert f"{package.arn} : PendingManualApproval → Approved" in text
    assert "dev: wine deployed" in text and "dev smoke test wine: ok" in text
    routing = visible(client.get("/routing").text)
    assert "wine v1" in routing and "passed" in routing
    assert "live in dev" in visible(client.get("/models/wine/1").text)


def test_reject_without_deploy_changes_only_the_registry(
    client: TestClient, home: LocalHome
) -> None:
    response = _post(
        client, "/models/wine/v1/reject", csrf_token=token(client), description="<script>x</script>"
    )
    assert response.status_code == 200, response.text
    assert "PendingManualApproval → Rejected" in visible(response.text)
    assert home.registry.get(GROUP, 1).approval_status == "Rejected"
    assert home.registry.events()[-1].approval_status == "Rejected"
    assert not (home.root / "s3" / "mme-local-artifacts" / "dev").exists()
    # The description is user text: shown escaped, never as markup.
    listing = client.get("/models").text
    assert "&lt;script&gt;x&lt;/script&gt;" in listing and "<script>" not in listing
    again = _post(client, "/models/wine/1/reject", csrf_token=token(client))
    assert "was already Rejected; nothing changed" in visible(again.text)


@pytest.mark.parametrize(
    ("fields", "headers", "status", "message"),
    [
        ({"csrf_token": "forged"}, {}, 403, "token is missing or stale"),
        ({"description": "no token"}, {}, 403, "token is missing or stale"),
        (None, {"origin": "http://evil.example"}, 403, "another origin (http://evil.example)"),
        (None, {"origin": "null"}, 403, "another origin (null)"),
        (None, {"sec-fetch-site": "cross-site"}, 403, "another site (Sec-Fetch-Site: cross-site)"),
        (None, {"host": "evil.example"}, 400, "answers only requests addressed to"),
    ],
)
def test_cross_site_posts_are_refused_and_change_nothing(
    client: TestClient,
    home: LocalHome,
    fields: dict[str, str] | None,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    events = home.registry.events()
    data = {"csrf_token": token(client)} if fields is None else fields
    response = client.post("/models/wine/1/approve", data=data, headers=headers)
    assert response.status_code == status
    assert message in response.text.replace("&#39;", "'")
    assert home.registry.get(GROUP, 1).approval_status == "PendingManualApproval"
    assert home.registry.events() == events


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (
            "/models/wien/1/approve",
            404,
            "unknown dataset 'wien'; did you mean 'wine'?",
        ),
        ("/models/wine/9/approve", 404, "model package group 'mme-wine' has no version 9"),
        ("/models/wine/latest/approve", 400, "'latest' is not a model version"),
        ("/models/wine/1/promote", 404, "no such decision 'promote'"),
    ],
)
def test_bad_targets_are_named_with_a_4xx_page(
    client: TestClient, home: LocalHome, path: str, status: int, message: str
) -> None:
    events = home.registry.events()
    response = _post(client, path, csrf_token=token(client), deploy="on")
    assert response.status_code == status
    assert message in alert(response.text)
    assert "Traceback" not in response.text
    assert home.registry.events() == events


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/models/wien/1", 404, "unknown dataset 'wien'; did you mean 'wine'?"),
        ("/models/wine/9", 404, "model package group 'mme-wine' has no version 9"),
        ("/models/wine/0", 400, "'0' is not a model version"),
    ],
)
def test_bad_version_pages_are_named_with_a_4xx_page(
    client: TestClient, path: str, status: int, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert message in alert(response.text) and "Traceback" not in response.text


def test_pages_forbid_framing_and_scripts(client: TestClient) -> None:
    headers = client.get("/models").headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
    assert client.get("/static/style.css").status_code == 200


# ---------------------------------------------------------------------------- command


@click.group()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--project-name", default=PROJECT)
@click.pass_context
def root(ctx: click.Context, home: Path, project_name: str) -> None:
    """Mounts `ui` as `mme` does: the Settings context object the root group sets."""
    ctx.obj = Settings(LocalHome(home), project_name)


root.add_command(ui)


def test_the_command_serves_the_home_on_loopback(
    home: LocalHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import local.ui.server

    fetched = {}

    def serve_briefly(app: Any, sock: socket.socket, on_started: Any = None) -> None:
        assert sock.getsockname()[0] == "127.0.0.1"
        with (
            serving(app, sock) as url,
            # No proxy from the environment: the server is on loopback.
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"{url}models", timeout=30
            ) as response,
        ):
            fetched["models"] = response.read().decode()

    monkeypatch.setattr(local.ui.server, "serve", serve_briefly)
    result = CliRunner().invoke(root, ["--home", str(home.root), "ui", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert re.search(r"mme ui: http://127\.0\.0\.1:\d+/ ", result.output)
    assert '<tr id="wine-v1">' in fetched["models"]


def test_a_busy_port_is_named_without_a_traceback(home: LocalHome) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(root, ["--home", str(home.root), "ui", "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is busy" in result.output and "--port" in result.output
    assert "Traceback" not in result.output


def test_without_the_ui_extra_the_command_says_what_to_install(
    home: LocalHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    for name in ("local.ui.app", "local.ui.server", "local.ui.security"):
        monkeypatch.delitem(sys.modules, name)
    # None in sys.modules makes an import fail as if the package were not installed.
    for name in [m for m in sys.modules if m.split(".")[0] in ("starlette", "jinja2")]:
        monkeypatch.setitem(sys.modules, name, None)
    # A busy port: were the extra found, the command would fail on it instead of serving.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(root, ["--home", str(home.root), "ui", "--port", port])
    assert result.exit_code == 1
    assert MISSING_EXTRA in result.output


# ---------------------------------------------------------------------------- browser


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's headless Chromium through its chromedriver (nothing downloaded)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"no headless browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"  # fmt: skip
        if os.environ.get("MME_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MME_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    # The driver's own HTTP connection is to loopback: no proxy may take it elsewhere.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-proxy-server", "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(180)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("MME_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        # The whole page, not the window: grow the window to the document for the shot.
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 140, 8000))
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))
        driver.set_window_size(1400, 1000)


def test_a_browser_approves_a_pending_version_and_sees_the_plots(
    home: LocalHome, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    app = create_app(home, PROJECT, drift_dir=drift_dir(home))
    with serving(app, bind("127.0.0.1", 0)) as url:
        browser.get(f"{url}models")
        _screenshot(browser, "registry")
        row = browser.find_element(By.ID, "wine-v1")
        assert "PendingManualApproval" in row.text
        row.find_element(By.NAME, "description").send_keys("looks good")
        row.find_element(By.NAME, "deploy").click()  # unchecked: registry only (fast)
        row.find_element(By.CSS_SELECTOR, "button.approve").click()

        # The result page, or the page saying why not.
        WebDriverWait(browser, 120).until(
            lambda driver: driver.find_elements(By.CSS_SELECTOR, "#result, .error")
        )
        errors = browser.find_elements(By.CSS_SELECTOR, ".error")
        assert not errors, errors[0].text
        result = browser.find_element(By.ID, "result")
        assert "PendingManualApproval → Approved" in result.text
        assert "Approved" in browser.find_element(By.TAG_NAME, "h1").text
        package = home.registry.get(GROUP, 1)
        assert (package.approval_status, package.approval_description) == (
            "Approved",
            "looks good",
        )

        browser.get(f"{url}models/wine/1")
        images = browser.find_elements(By.CSS_SELECTOR, ".plots img")
        assert len(images) >= 4
        loaded = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
        )
        assert all(complete and width > 0 for complete, width in loaded), loaded
        _screenshot(browser, "version")
        browser.get(f"{url}drift/{DRIFT_RUN}/prod/wine")
        _screenshot(browser, "drift")
