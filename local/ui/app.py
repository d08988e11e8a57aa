"""The `mme ui` web application: pages over the local state, and approval forms.

Pages render Jinja2 templates (autoescaped: dataset names, descriptions and failure reasons are
user text) from `local.ui.state`. Approve and Reject post a plain HTML form that goes through
`local.approval.decide`, the function behind `mme approve` and `mme reject`, so a button deploys
to dev and smoke-tests exactly as the command does; what that deployment reports is shown on
the result page. A problem the user can fix (an unknown dataset or version, a refused form, a
failed dev deployment) is a page naming it with a 4xx status; anything else is a 500 page
without a traceback, which goes to the server's log instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from container.errors import InputError
from local import execution_summary
from local.home import LocalHome
from local.ui import state
from local.ui.security import (
    CSRF_FIELD,
    LOOPBACK_NAMES,
    HostGuard,
    cross_site_problem,
    new_token,
    token_problem,
)

STATIC_DIR = Path(__file__).parent / "static"
# An approval form is a token, a choice and a description: anything bigger is not ours.
MAX_FORM_BYTES = 64 * 1024
DECISIONS = {"approve": "Approved", "reject": "Rejected"}
EXECUTIONS_SHOWN = 100


class UiError(Exception):
    """A page-level refusal with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("local.ui", "templates"),
        autoescape=True,  # every template, whatever its name: all of them are HTML
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["duration"] = _duration
    environment.filters["number"] = _number
    return environment


def _when(timestamp: str | None) -> str:
    return timestamp[:19].replace("T", " ") if timestamp else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


class Ui:
    """The pages of one home and project; `token` guards its forms for this process's life."""

    def __init__(self, home: LocalHome, project: str, drift_dir: Path | None) -> None:
        self.home = home
        self.project = project
        self.drift_dir = drift_dir
        self.token = new_token()
        self.templates = _environment()

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        page = self.templates.get_template(name).render(
            request=request,
            project=self.project,
            home=str(self.home.root),
            csrf_field=CSRF_FIELD,
            csrf_token=self.token,
            **context,
        )
        return HTMLResponse(page, status_code=status)

    # ------------------------------------------------------------------ pages

    async def index(self, request: Request) -> Response:
        return RedirectResponse(request.url_for("models"), status_code=303)

    def executions(self, request: Request) -> Response:
        records = self.home.executions.list()[:EXECUTIONS_SHOWN]
        rows = [(record, execution_summary.execution_result(record)) for record in records]
        return self.render(request, "executions.html", rows=rows)

    def execution(self, request: Request) -> Response:
        record = state.execution(self.home, request.path_params["execution"])
        return self.render(
            request,
            "execution.html",
            record=record,
            result=execution_summary.execution_result(record),
            outputs={step.name: execution_summary.step_output(step) for step in record.steps},
            has_trials=state.has_trials(record),
        )

    def execution_log(self, request: Request) -> Response:
        record = state.execution(self.home, request.path_params["execution"])
        path = state.log_file(self.home, record, request.path_params["log"])
        return FileResponse(path, media_type="text/plain; charset=utf-8")

    def trials(self, request: Request) -> Response:
        record = state.execution(self.home, request.path_params["execution"])
        board = state.leaderboard(self.home, record)
        return self.render(request, "trials.html", record=record, board=board)

    def models(self, request: Request) -> Response:
        return self.render(request, "models.html", groups=state.registry(self.home, self.project))

    def version(self, request: Request) -> Response:
        page = self._version_page(request)
        return self.render(
            request,
            "version.html",
            page=page,
            metrics=state.headline(page.view.report) if page.view else [],
        )

    def version_plot(self, request: Request) -> Response:
        path = state.plot_file(self._version_page(request), request.path_params["plot"])
        return FileResponse(path, media_type="image/png")

    def routing(self, request: Request) -> Response:
        return self.render(
            request, "routing.html", tables=state.routing_tables(self.home, self.project)
        )

    def drift(self, request: Request) -> Response:
        entries = state.drift_reports(self.home, self.project, self.drift_dir)
        return self.render(request, "drift.html", entries=entries, drift_dir=self.drift_dir)

    def drift_report(self, request: Request) -> Response:
        return self.render(request, "drift_report.html", entry=self._drift_entry(request))

    def drift_plot(self, request: Request) -> Response:
        path = state.drift_plot(self._drift_entry(request), request.path_params["plot"])
        return FileResponse(path, media_type="image/png")

    def _version_page(self, request: Request) -> state.VersionPage:
        params = request.path_params
        return state.version_page(self.home, self.project, params["target"], params["version"])

    def _drift_entry(self, request: Request) -> state.DriftEntry:
        params = request.path_params
        return state.drift_report(
            self.home,
            self.project,
            self.drift_dir,
            params["source"],
            params["stage"],
            params["dataset"],
        )

    # ------------------------------------------------------------------ approval

    async def decide(self, request: Request) -> Response:
        """Approve or reject a version through `local.approval.decide` (as `mme approve`)."""
        from local.approval import Outcome, decide

        # Headers first: a cross-site request is refused before its body is read.
        problem = cross_site_problem(request)
        if problem is not None:
            raise UiError(403, f"refused: {problem}")
        form = await _form(request)
        problem = token_problem(form, self.token)
        if problem is not None:
            raise UiError(403, f"refused: {problem}")
        action = request.path_params["action"]
        if action not in DECISIONS:
            raise UiError(404, f"no such decision '{action}' (approve or reject)")
        target, version_text = request.path_params["target"], request.path_params["version"]
        # Named 404s for a dataset or version that does not exist, before anything changes.
        package = await run_in_threadpool(
            state.package, self.home, self.project, target, version_text
        )
        outcomes: list[Outcome] = []
        try:
            decision = await run_in_threadpool(
                lambda: decide(
                    self.home,
                    self.project,
                    target,
                    package.version,
                    DECISIONS[action],  # type: ignore[arg-type]
                    form.get("description", ""),
                    deploy=form.get("deploy") == "on",
                    report=outcomes.append,
                )
            )
        except InputError as error:
            # The registry may have changed (the deployment failed after it): show both.
            current = await run_in_threadpool(
                state.package, self.home, self.project, target, version_text
            )
            return self.render(
                request,
                "decision.html",
                status=409,
                package=current,
                before=package.approval_status,
                target=target,
                outcomes=outcomes,
                error=error.describe(),
                changed=current.approval_status != package.approval_status,
            )
        return self.render(
            request,
            "decision.html",
            package=decision.package,
            before=decision.before,
            target=target,
            outcomes=outcomes,
            error=None,
            changed=decision.changed,
        )

    # ------------------------------------------------------------------ errors

    async def input_error(self, request: Request, error: Exception) -> Response:
        status = 404 if isinstance(error, state.NotFound) else 400
        message = error.describe() if isinstance(error, InputError) else str(error)
        return self.render(request, "error.html", status=status, message=message)

    async def ui_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, UiError)
        return self.render(request, "error.html", status=error.status, message=error.message)

    async def http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return self.render(request, "error.html", status=error.status_code, message=error.detail)

    async def server_error(self, request: Request, error: Exception) -> Response:
        # Starlette re-raises it after this page is sent: the server logs the traceback.
        message = f"{type(error).__name__}: {error} (details in the server's log)"
        return self.render(request, "error.html", status=500, message=message)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each), at most MAX_FORM_BYTES."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UiError(415, "expected an HTML form (application/x-www-form-urlencoded)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise UiError(413, f"the form is larger than {MAX_FORM_BYTES // 1024} KB")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as error:
        raise UiError(400, f"unreadable form: {error}") from None
    return {name: values[0] for name, values in fields.items()}


def create_app(
    home: LocalHome,
    project: str,
    *,
    drift_dir: Path | None = None,
    allowed_hosts: frozenset[str] = LOOPBACK_NAMES,
) -> Starlette:
    """The application over HOME; `app.state.ui.token` is the token its forms carry."""
    ui = Ui(home, project, drift_dir)
    version = "/models/{target}/{version}"
    drift = "/drift/{source}/{stage}/{dataset}"
    routes = [
        Route("/", ui.index, name="index"),
        Route("/executions", ui.executions, name="executions"),
        Route("/executions/{execution}", ui.execution, name="execution"),
        Route("/executions/{execution}/trials", ui.trials, name="trials"),
        Route("/executions/{execution}/logs/{log:path}", ui.execution_log, name="log"),
        Route("/models", ui.models, name="models"),
        Route(version, ui.version, name="version"),
        Route(version + "/plots/{plot}", ui.version_plot, name="version_plot"),
        Route(version + "/{action}", ui.decide, methods=["POST"], name="decide"),
        Route("/routing", ui.routing, name="routing"),
        Route("/drift", ui.drift, name="drift"),
        Route(drift, ui.drift_report, name="drift_report"),
        Route(drift + "/plots/{plot}", ui.drift_plot, name="drift_plot"),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(HostGuard, allowed_hosts=allowed_hosts)],
        exception_handlers={
            InputError: ui.input_error,
            UiError: ui.ui_error,
            HTTPException: ui.http_error,
            Exception: ui.server_error,
        },
    )
    app.state.ui = ui
    return app
