"""Why another web site cannot drive `mme ui`: a page that approves and deploys models listens on
loopback, where any site the user visits could reach it from the browser.

- Host check (every request): only the names the server was started for are answered, so a
  DNS-rebinding site (its own name resolving to 127.0.0.1) gets a 400 instead of the pages.
- Forms (every POST): the per-process token the page embedded must come back, and a browser's
  Origin / Sec-Fetch-Site must say the form was sent from this origin. A cross-site form cannot
  read the token, and its Origin names the other site.
- Headers (every response): no framing (no clickjacking of the buttons), no sniffing, no
  referrer to other sites, and a Content-Security-Policy that allows only this origin's styles and images and
  no script at all (the pages have none).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
CSRF_FIELD = "csrf_token"
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # Not no-referrer: with it Chromium sends `Origin: null` on the forms, which reads as foreign.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def host_name(host_header: str) -> str | None:
    """`127.0.0.1:8765` -> `127.0.0.1`, `[::1]:8765` -> `::1`; None when it is not a host."""
    try:
        return urlsplit(f"//{host_header}").hostname
    except ValueError:
        return None


class HostGuard:
    """ASGI middleware: refuse a Host the server was not started for; add HEADERS to replies."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(name.lower() for name in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = host_name(Headers(scope=scope).get("host", ""))
        if name is None or name.lower() not in self.allowed:
            refusal = PlainTextResponse(
                f"mme ui answers only requests addressed to {', '.join(sorted(self.allowed))}",
                status_code=400,
                headers=HEADERS,
            )
            await refusal(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = {key.lower() for key, _ in headers}
                for key, value in HEADERS.items():
                    if key.encode() not in present:
                        headers.append((key.encode(), value.encode()))
            await send(message)

        await self.app(scope, receive, with_headers)


def cross_site_problem(request: Request) -> str | None:
    """Why a browser's POST came from another site (its Sec-Fetch-Site or Origin), or None."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"the form was sent from another site (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return f"the form was sent from another origin ({origin})"
    return None


def token_problem(form: dict[str, str], token: str) -> str | None:
    """Why the form's token is not this process's (what a cross-site form cannot read), or None."""
    if not hmac.compare_digest(form.get(CSRF_FIELD, "").encode(), token.encode()):
        return "the form's token is missing or stale: reload the page and try again"
    return None
