"""The acknowledgement page in a real headless Chromium (Debian's package, driven by
Playwright; no browser download): the page shows the finding escaped, a click on the
button acknowledges it, and a screenshot is kept for people to look at."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import time_machine
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from monitor.db.tables import Finding
from tests.test_alerts import CRISIS, make, outbox, running_web
from tests.test_pipeline import T0, write_events

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_ack_page_in_chromium(tmp_path: Path) -> None:
    hostile = [{**CRISIS[0], "text": "<img src=x onerror=alert(1)> i want to kill myself"}]
    write_events(tmp_path / "events.jsonl", hostile)
    with time_machine.travel(T0 + timedelta(hours=1), tick=True):
        service = make(tmp_path)
        service.poll_once(force=True)
        (alert,) = outbox(tmp_path)
        text = alert.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        token = re.search(r"/ack/(\S+)", text).group(1)  # type: ignore[union-attr]
        with running_web(service) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{base}/ack/{token}")
            assert "9.0" in page.inner_text("h1")
            assert "<img src=x" in page.inner_text("blockquote")  # shown as text, not run
            page.screenshot(path=str(tmp_path / "ack-before.png"), full_page=True)
            page.click("#ack")
            page.wait_for_selector("#status")
            assert "Acknowledged by principal@central.example" in page.inner_text("#status")
            page.screenshot(path=str(tmp_path / "ack-after.png"), full_page=True)
            browser.close()
        assert dialogs == []
        with service.sessions() as s:
            status = s.scalars(select(Finding.status).where(Finding.severity == "urgent")).one()
        service.close()
    assert status == "acknowledged"
    assert (tmp_path / "ack-before.png").stat().st_size > 5000
    shots = Path(__file__).parent.parent / "var" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "ack-before.png", shots / "ack-page.png")
