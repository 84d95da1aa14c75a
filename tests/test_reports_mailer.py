"""The mailer against a real SMTP server on loopback and a real outbox directory."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from monitor.config import MailConfig
from reports.mailer import Mailer, MailError
from reports.render import RenderedMessage, message_id_for, render_urgent
from reports.views import FindingView, OutgoingMessage, UrgentView
from tests.smtpd_support import CapturingSMTPServer, free_port

SENDER = "policywatch@board.example"
TO = "principal@school.example"
PASSWORD = "s3cret-Pa55word-do-not-leak"


def rendered_alert(author: str = "Student", handle: str = "@grade5class") -> RenderedMessage:
    f = FindingView(
        id=7,
        account_id="grade5-x",
        account_handle=handle,
        platform="x",
        subject_kind="comment",
        section="9.0",
        category="crisis",
        severity="urgent",
        rule_id="duty-of-care.crisis",
        message="A student may be in crisis",
        action="Contact the student's principal right away.",
        text="je ne veux plus être ici — call 705-268-7443 " + "long line " * 120,
        evidence_start=0,
        evidence_end=24,
        author=author,
        url="https://x.com/someone/status/123",
        created_at=datetime(2024, 5, 1, 17, 30, tzinfo=UTC),
    )
    view = UrgentView(
        recipient=TO,
        school_id="central",
        school_name="École Centrale",
        language="fr",
        findings=[f],
        ack_url="https://policywatch.board.example/ack/abc",
    )
    return render_urgent(view)


def outgoing(rendered: RenderedMessage, key: str = "urgent:7:principal") -> OutgoingMessage:
    return OutgoingMessage(
        to=TO,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=message_id_for(key, "board.example"),
    )


def smtp_config(port: int, **extra: Any) -> MailConfig:
    return MailConfig(
        sender=SENDER, host="127.0.0.1", port=port, timeout=timedelta(seconds=5), **extra
    )


@pytest.fixture
def server() -> Iterator[CapturingSMTPServer]:
    with CapturingSMTPServer() as srv:
        yield srv


def parts(message: EmailMessage) -> dict[str, str]:
    """Each alternative's decoded content.

    Text parts travel in canonical form with CRLF line breaks (RFC 2046 4.1.1), so
    CRLF is mapped back to the LF the renderer produces; nothing else is touched.
    """
    assert message.get_content_type() == "multipart/alternative"
    out: dict[str, str] = {}
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        assert part.get_content_charset() == "utf-8"
        out[part.get_content_type()] = part.get_content().replace("\r\n", "\n")
    return out


def test_smtp_delivers_exact_multipart_alternative(server: CapturingSMTPServer) -> None:
    rendered = rendered_alert()
    msg = outgoing(rendered)
    assert Mailer.from_config(smtp_config(server.port)).send(msg) is None

    [(mail_from, rcpt_tos, received)] = server.messages
    assert mail_from == SENDER
    assert rcpt_tos == [TO]
    assert received["To"] == TO
    assert received["From"].addresses[0].addr_spec == SENDER
    assert received["Subject"] == rendered.subject
    assert received["Subject"].startswith("URGENT policywatch : section 9.0")
    assert received["Message-ID"] == msg.message_id
    assert received["Date"].datetime is not None
    assert parts(received) == {"text/plain": rendered.text, "text/html": rendered.html}
    raw = server.raw_messages[0]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert max(raw) < 0x80  # 7-bit clean: no relay needs 8BITMIME


def test_crlf_in_platform_text_never_adds_headers_or_recipients(
    server: CapturingSMTPServer,
) -> None:
    hostile = "Mallory\r\nBcc: evil@x\r\n\r\n"
    rendered = rendered_alert(author=hostile, handle="@x\r\nBcc: evil@x")
    msg = outgoing(rendered)
    msg = dataclasses.replace(msg, subject=msg.subject + "\r\nBcc: evil@x\nCc: evil2@x")
    Mailer.from_config(smtp_config(server.port)).send(msg)

    [(_, rcpt_tos, received)] = server.messages
    assert rcpt_tos == [TO]
    assert received["Bcc"] is None and received["Cc"] is None
    assert sorted(received.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "MIME-Version",
            "Content-Type",
        ]
    )
    header_block = server.raw_messages[0].split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block and b"\r\nCc:" not in header_block
    assert "\n" not in received["Subject"]
    text = parts(received)["text/plain"]
    assert "Mallory Bcc: evil@x" in text  # visible in the body as harmless text


def test_rejects_recipient_lists_and_bad_message_ids(server: CapturingSMTPServer) -> None:
    mailer = Mailer.from_config(smtp_config(server.port))
    msg = outgoing(rendered_alert())
    for bad in (
        dataclasses.replace(msg, to="a@school.example, evil@x.example"),
        dataclasses.replace(msg, to="a@school.example\r\nBcc: evil@x"),
        dataclasses.replace(msg, message_id="<x@y>\r\nBcc: evil@x"),
        dataclasses.replace(msg, message_id="no-brackets@board.example"),
    ):
        with pytest.raises(MailError):
            mailer.send(bad)
    assert server.messages == []


AUTH_WITHOUT_TLS = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning"
)


@AUTH_WITHOUT_TLS
def test_authenticated_send_keeps_bare_usernames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_SMTP_USER", "apikey")
    monkeypatch.setenv("PW_SMTP_PASSWORD", PASSWORD)
    with CapturingSMTPServer(credentials=("apikey", PASSWORD)) as srv:
        config = smtp_config(srv.port, username_env="PW_SMTP_USER", password_env="PW_SMTP_PASSWORD")
        Mailer.from_config(config).send(outgoing(rendered_alert()))
        assert srv.logins == ["apikey"]  # not "apikey@gmail.com", yagmail's default guess
        assert srv.messages[0].rcpt_tos == [TO]


@AUTH_WITHOUT_TLS
def test_wrong_password_is_a_mail_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW_SMTP_USER", "apikey")
    monkeypatch.setenv("PW_SMTP_PASSWORD", PASSWORD)
    with CapturingSMTPServer(credentials=("apikey", "another-password")) as srv:
        config = smtp_config(srv.port, username_env="PW_SMTP_USER", password_env="PW_SMTP_PASSWORD")
        with pytest.raises(MailError) as info:
            Mailer.from_config(config).send(outgoing(rendered_alert()))
        assert f"127.0.0.1:{srv.port}" in str(info.value)
        assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)
        assert srv.messages == []


def test_closed_port_names_host_and_port_but_not_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW_SMTP_USER", "mailer@board.example")
    monkeypatch.setenv("PW_SMTP_PASSWORD", PASSWORD)
    port = free_port()
    config = smtp_config(port, username_env="PW_SMTP_USER", password_env="PW_SMTP_PASSWORD")
    with pytest.raises(MailError) as info:
        Mailer.from_config(config).send(outgoing(rendered_alert()))
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert PASSWORD not in message and PASSWORD not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_secret_is_a_mail_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PW_SMTP_USER", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = smtp_config(free_port(), username_env="PW_SMTP_USER", password_env="PW_NOPE")
    with pytest.raises(MailError, match="PW_SMTP_USER"):
        Mailer.from_config(config).send(outgoing(rendered_alert()))


def test_starttls_required_but_unsupported_fails_closed(server: CapturingSMTPServer) -> None:
    config = smtp_config(server.port, security="starttls")
    with pytest.raises(MailError, match=f"127.0.0.1:{server.port}"):
        Mailer.from_config(config).send(outgoing(rendered_alert()))
    assert server.messages == []


def test_silent_server_times_out_per_config() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP handshake, never sends a greeting
        port = listener.getsockname()[1]
        config = MailConfig(
            sender=SENDER, host="127.0.0.1", port=port, timeout=timedelta(seconds=1)
        )
        with pytest.raises(MailError, match=f"127.0.0.1:{port}"):
            Mailer.from_config(config).send(outgoing(rendered_alert()))


def test_outbox_writes_parseable_eml_once(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mailer = Mailer.from_config(MailConfig(sender=SENDER, outbox_dir=outbox))
    rendered = rendered_alert()
    msg = outgoing(rendered)

    path = mailer.send(msg)
    assert path is not None and Path(path).parent == outbox
    assert Path(path).suffix == ".eml"
    original = Path(path).read_bytes()
    parsed = email.message_from_bytes(original, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == msg.message_id
    assert parsed["To"] == TO and parsed["Subject"] == rendered.subject
    assert parsed["From"].addresses[0].addr_spec == SENDER
    assert parts(parsed) == {"text/plain": rendered.text, "text/html": rendered.html}

    again = dataclasses.replace(msg, text="changed\n")
    assert mailer.send(again) == path
    assert Path(path).read_bytes() == original
    assert [p.name for p in outbox.iterdir()] == [Path(path).name]  # no temp files left

    other = mailer.send(outgoing(rendered, key="urgent:8:principal"))
    assert other != path
    assert len(list(outbox.iterdir())) == 2


def test_outbox_file_name_is_filesystem_safe(tmp_path: Path) -> None:
    mailer = Mailer.from_config(MailConfig(sender=SENDER, outbox_dir=tmp_path))
    msg = dataclasses.replace(outgoing(rendered_alert()), to="o'brien+alerts@school.example")
    path = Path(mailer.send(msg) or "")
    assert path.parent == tmp_path
    assert all(c.isalnum() or c in "._@+-" for c in path.name)
