"""A real SMTP server on loopback for tests, so the mailer is exercised end to end.

Tests assert on what a server actually received (envelope and parsed MIME), not on
what we believe we handed to smtplib; that is the only way to catch a library
rewriting the message on the way out.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from email.message import EmailMessage
from types import TracebackType
from typing import Any, NamedTuple

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReceivedMessage(NamedTuple):
    """What the server got: `mail_from, rcpt_tos, message = server.messages[0]`."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class _Handler:
    def __init__(self, server: CapturingSMTPServer) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated else None
        self._server._record(
            ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), parsed), raw, login
        )
        return "250 Message accepted for delivery"


class CapturingSMTPServer:
    """`with CapturingSMTPServer() as server:` ... `server.messages`.

    With `credentials=(user, password)` the server refuses mail until the client
    authenticates (AUTH PLAIN/LOGIN over plain TCP, acceptable only on loopback).
    """

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.credentials = credentials
        self._messages: list[ReceivedMessage] = []
        self._raw: list[bytes] = []
        self._logins: list[str | None] = []
        self._lock = threading.Lock()
        self.failed_logins = 0
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=False
            )
        self._controller = Controller(
            _Handler(self),
            hostname=host,
            port=self.port,
            ready_timeout=5.0,
            **kwargs,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        expected = self.credentials
        if (
            expected is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == expected[0].encode()
            and auth_data.password == expected[1].encode()
        ):
            return AuthResult(success=True, auth_data=auth_data)
        with self._lock:
            self.failed_logins += 1
        return AuthResult(success=False, handled=False)

    def _record(self, received: ReceivedMessage, raw: bytes, login: str | None) -> None:
        with self._lock:
            self._messages.append(received)
            self._raw.append(raw)
            self._logins.append(login)

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def raw_messages(self) -> list[bytes]:
        """The bytes as received, for assertions a parser would smooth over."""
        with self._lock:
            return list(self._raw)

    @property
    def logins(self) -> list[str | None]:
        """Per message, the user it was sent as (None when no AUTH happened)."""
        with self._lock:
            return list(self._logins)

    def __enter__(self) -> CapturingSMTPServer:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()
