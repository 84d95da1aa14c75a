"""The acknowledgement page behind the one-click link in urgent emails.

GET shows the finding (escaped) and a button; only POST changes state, so a mail
scanner or link preview that fetches the URL can never acknowledge an alert.
Pages are never cached and send no Referer, because the URL itself is the
capability.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import uvicorn
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from monitor.acklinks import AckSigner, InvalidLinkError
from monitor.actions import acknowledge, incident_findings
from monitor.db.tables import Account, Finding
from monitor.service import Service
from monitor.timeutil import as_utc
from reports.render import section_title
from reports.safety import excerpt

log = logging.getLogger(__name__)

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "web_templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}


def _page(template: str, status: int = 200, **context: object) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def create_app(service: Service, signer: AckSigner, clock: Callable[[], datetime]) -> Starlette:
    def claim_or_error(request: Request) -> tuple[int, str] | Response:
        try:
            claim = signer.verify(str(request.path_params["token"]), clock())
        except InvalidLinkError as exc:
            return _page("invalid.html", 400, reason=str(exc))
        return claim.finding_id, claim.recipient

    async def show(request: Request) -> Response:
        claim = claim_or_error(request)
        if isinstance(claim, Response):
            return claim
        finding_id, recipient = claim
        with service.sessions() as session:
            finding = session.get(Finding, finding_id)
            if finding is None:
                return _page("invalid.html", 404, reason="this finding no longer exists")
            school = service.config.school(finding.school_id)
            account = session.get_one(Account, finding.account_id)
            related = incident_findings(session, finding)
            text = finding.item.text if finding.item is not None else finding.summary
            return _page(
                f"ack.{school.language}.html",
                recipient=recipient,
                school=school.name,
                account=account.handle,
                platform=account.platform,
                sections=sorted({section_title(f.section, school.language) for f in related}),
                messages=[f.message for f in related],
                actions=sorted({f.action for f in related}),
                excerpt=excerpt(text, finding.evidence_start, finding.evidence_end),
                acknowledged_by=finding.acknowledged_by,
                acknowledged_at=(
                    as_utc(finding.acknowledged_at).strftime("%Y-%m-%d %H:%M UTC")
                    if finding.acknowledged_at
                    else None
                ),
                finding_id=finding.id,
            )

    async def ack(request: Request) -> Response:
        claim = claim_or_error(request)
        if isinstance(claim, Response):
            return claim
        finding_id, recipient = claim
        with service.sessions.begin() as session:
            if session.get(Finding, finding_id) is None:
                return _page("invalid.html", 404, reason="this finding no longer exists")
            changed = acknowledge(session, finding_id, recipient, clock())
        if changed:
            log.info("finding %s acknowledged by %s through the web link", finding_id, recipient)
        return RedirectResponse(str(request.url), status_code=303, headers=_HEADERS)

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/ack/{token}", show, methods=["GET"]),
            Route("/ack/{token}", ack, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


class WebServer:
    """uvicorn in a background thread, stopped with the daemon."""

    def __init__(self, service: Service, *, port: int | None = None) -> None:
        assert service.signer is not None
        app = create_app(service, service.signer, service.clock)
        cfg = service.config.web
        self.host, self.port = cfg.listen, port or cfg.port
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.host,
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wait_ready(self, timeout: float = 10.0) -> str:
        """Block until uvicorn listens; return its base URL."""
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"web endpoint did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
