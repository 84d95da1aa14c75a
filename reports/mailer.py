"""Delivering a rendered message: to an SMTP server through yagmail, or to an outbox of .eml files.

The MIME message is always built here, with the standard library, so that what is
delivered is exactly what was rendered: one multipart/alternative with the text
and the HTML part, the caller's Message-ID, and no header that platform text can
reach except a Subject that already went through `header_fragment`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yagmail

from monitor.config import MailConfig
from monitor.secrets import MissingSecretError, read_secret
from reports.safety import header_fragment
from reports.views import OutgoingMessage

# 7bit: non-ASCII bodies go out quoted-printable/base64, so no relay has to
# support 8BITMIME and long lines are wrapped by the encoding, not by a relay.
_POLICY = SMTP.clone(cte_type="7bit")
_MESSAGE_ID = re.compile(r"^<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]{1,128}@[A-Za-z0-9.\-]{1,253}>$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._@+\-]+")
SUBJECT_MAX = 200


class MailError(Exception):
    """A message could not be built or delivered; the text names the server, never a secret."""


def build_message(msg: OutgoingMessage, sender: str, now: datetime | None = None) -> EmailMessage:
    """The complete RFC 5322 message, identical for SMTP and the outbox."""
    if not _MESSAGE_ID.match(msg.message_id):
        raise MailError("refusing to send: Message-ID is not of the form <id@domain>")
    try:
        recipient = Address(addr_spec=msg.to)
        from_addr = Address(display_name="policywatch", addr_spec=sender)
    except (ValueError, IndexError, TypeError):
        raise MailError(
            "refusing to send: sender or recipient is not a single email address"
        ) from None
    if any(ch in msg.to for ch in "\r\n,;<>") or "@" not in recipient.addr_spec:
        raise MailError("refusing to send: recipient is not a single email address")
    mime = EmailMessage(policy=_POLICY)
    mime["From"] = from_addr
    mime["To"] = recipient
    mime["Subject"] = header_fragment(msg.subject, max_len=SUBJECT_MAX)
    mime["Date"] = format_datetime(now or datetime.now(UTC))
    mime["Message-ID"] = msg.message_id
    # RFC 3834: tells vacation responders and ticket systems not to answer alerts.
    mime["Auto-Submitted"] = "auto-generated"
    mime.set_content(msg.text, subtype="plain", charset="utf-8")
    mime.add_alternative(msg.html, subtype="html", charset="utf-8")
    return mime


def outbox_name(message_id: str, recipient: str) -> str:
    """A name safe on any filesystem, yet recognisable to someone browsing the outbox."""
    digest = hashlib.sha256(f"{message_id}\0{recipient}".encode()).hexdigest()[:12]
    mid = _UNSAFE_NAME.sub("_", message_id.strip("<>"))[:80]
    to = _UNSAFE_NAME.sub("_", recipient)[:80]
    return f"{mid}__{to}__{digest}.eml"


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to connect; secrets stay as variable names until the moment of login."""

    host: str
    port: int
    security: str
    username_env: str | None
    password_env: str | None
    timeout: float

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class Mailer:
    """One place that knows how mail leaves the process."""

    def __init__(
        self, sender: str, *, outbox_dir: Path | None = None, smtp: SmtpServer | None = None
    ) -> None:
        if (outbox_dir is None) == (smtp is None):
            raise ValueError("a Mailer needs exactly one of an outbox directory or an SMTP server")
        self.sender = sender
        self.outbox_dir = outbox_dir
        self._smtp = smtp

    @classmethod
    def from_config(cls, mail: MailConfig) -> Mailer:
        if mail.outbox_dir is not None:
            return cls(mail.sender, outbox_dir=mail.outbox_dir)
        assert mail.host is not None  # MailConfig guarantees exactly one transport
        smtp = SmtpServer(
            host=mail.host,
            port=mail.port,
            security=mail.security,
            username_env=mail.username_env,
            password_env=mail.password_env,
            timeout=mail.timeout.total_seconds(),
        )
        return cls(mail.sender, smtp=smtp)

    def send(self, msg: OutgoingMessage) -> str | None:
        """Deliver `msg`; returns the .eml path in outbox mode, None after an SMTP hand-off."""
        mime = build_message(msg, self.sender)
        if self.outbox_dir is not None:
            return str(self._write_outbox(self.outbox_dir, mime, msg))
        assert self._smtp is not None
        _send_smtp(self._smtp, self.sender, msg.to, mime)
        return None

    @staticmethod
    def _write_outbox(outbox: Path, mime: EmailMessage, msg: OutgoingMessage) -> Path:
        """Write once, atomically: a reader never sees half a file, a retry never rewrites one."""
        target = outbox / outbox_name(msg.message_id, msg.to)
        try:
            outbox.mkdir(parents=True, exist_ok=True)
            if target.exists():
                return target
            fd, tmp_name = tempfile.mkstemp(dir=outbox, prefix=".tmp-", suffix=".eml")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(mime.as_bytes(policy=_POLICY))
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    # link() fails if the target exists, so two racing senders
                    # cannot both "win" and the first file is never replaced.
                    os.link(tmp, target)
                except FileExistsError:
                    pass
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        except OSError as exc:
            raise MailError(f"cannot write to outbox {outbox}: {exc.strerror or exc}") from None
        return target


def _credentials(smtp: SmtpServer) -> tuple[str | None, str | None]:
    if smtp.username_env is None:
        return None, None
    if smtp.password_env is None:
        raise MailError(f"mail to {smtp.where}: username_env is set but password_env is not")
    try:
        return read_secret(smtp.username_env).reveal(), read_secret(smtp.password_env).reveal()
    except MissingSecretError as exc:
        raise MailError(f"mail to {smtp.where}: {exc}") from None


def _send_smtp(smtp: SmtpServer, sender: str, to: str, mime: EmailMessage) -> None:
    """Hand the finished message to the server, with yagmail as the connection.

    yagmail 0.16's own `send()` cannot be used: it wraps contents in
    multipart/mixed > alternative > related, sends the *HTML source* as the
    text/plain part, turns newlines into <br>, runs premailer over the HTML and
    mints its own Message-ID unless told otherwise.  So yagmail only does what it
    is good at here (connect, STARTTLS/SSL, login) and the message we built goes
    through its live `smtplib` connection with `send_message`, envelope recipients
    given explicitly so no header can add one.
    """
    username, password = _credentials(smtp)
    # A dict {address: alias} is the one form yagmail does not "complete": a bare
    # login name like "apikey" would otherwise become "apikey@gmail.com".
    user: Any = {username: username} if username else {sender: sender}
    # smtplib in Python 3.11 does not verify server certificates unless given a
    # context; yagmail passes `smtp_starttls` (when a dict) to starttls() and extra
    # keyword arguments to the SMTP/SMTP_SSL constructor.
    tls = ssl.create_default_context()
    extra: dict[str, Any] = {"timeout": smtp.timeout}
    if smtp.security == "ssl":
        extra["context"] = tls
    try:
        yag = yagmail.SMTP(
            user=user,
            password=password,
            host=smtp.host,
            port=smtp.port,
            smtp_starttls={"context": tls} if smtp.security == "starttls" else False,
            smtp_ssl=smtp.security == "ssl",
            smtp_skip_login=username is None,
            soft_email_validation=False,
            **extra,
        )
        try:
            yag.login()
            yag.smtp.send_message(mime, from_addr=sender, to_addrs=[to])
        finally:
            yag.close()
    except (smtplib.SMTPException, OSError, yagmail.YagConnectionClosed) as exc:
        raise MailError(f"could not send mail via {smtp.where}: {_reason(exc, password)}") from None


def _reason(exc: BaseException, password: str | None) -> str:
    """A one-line cause; the password is scrubbed even though servers should never echo it."""
    detail = str(exc) or exc.__class__.__name__
    if isinstance(exc, smtplib.SMTPResponseException):
        err = exc.smtp_error
        text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
        detail = f"{exc.smtp_code} {text}"
    reason = f"{exc.__class__.__name__}: {header_fragment(detail, max_len=300)}"
    if password:
        reason = reason.replace(password, "***")
    return reason
