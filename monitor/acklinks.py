"""Signed one-click acknowledgement links for urgent emails.

A link carries (finding id, recipient, expiry, purpose) signed with HMAC-SHA256, so
the web endpoint needs no session or login and a link cannot be altered to
acknowledge another finding, on behalf of someone else, after it expires, or for any
purpose other than acknowledging.  The key comes from `[web] key_env` (environment
or systemd credential); without one, a random key is generated once and kept,
readable by the service user only, in the state directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from monitor.config import Config
from monitor.secrets import read_secret

PURPOSE = "ack"


class InvalidLinkError(ValueError):
    """The link was altered, expired, or was made for something else."""


@dataclass(frozen=True, slots=True)
class AckClaim:
    finding_id: int
    recipient: str
    expires: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AckSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the acknowledgement key must be at least 16 bytes")
        self._key = key

    @classmethod
    def from_config(cls, config: Config) -> AckSigner:
        if config.web.key_env:
            return cls(read_secret(config.web.key_env).reveal().encode("utf-8"))
        path = Path(config.state_dir) / "ack-signing.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return cls(path.read_text(encoding="utf-8").strip().encode("utf-8"))

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def sign(self, finding_id: int, recipient: str, expires: datetime) -> str:
        payload = json.dumps(
            {"p": PURPOSE, "f": finding_id, "r": recipient, "e": int(expires.timestamp())},
            separators=(",", ":"),
        ).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str, now: datetime) -> AckClaim:
        try:
            payload_part, mac_part = token.split(".", 1)
            payload = _unb64(payload_part)
            mac = _unb64(mac_part)
        except (ValueError, TypeError):
            raise InvalidLinkError("this link is not a policywatch acknowledgement link") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidLinkError("this link was altered or signed with another key")
        data = json.loads(payload)
        if data.get("p") != PURPOSE:
            raise InvalidLinkError("this link is not for acknowledging an alert")
        expires = datetime.fromtimestamp(int(data["e"]), UTC)
        if expires < now:
            raise InvalidLinkError("this link has expired; use `policywatch findings ack`")
        return AckClaim(int(data["f"]), str(data["r"]), expires)

    def url(self, config: Config, finding_id: int, recipient: str, now: datetime) -> str:
        token = self.sign(finding_id, recipient, now + config.web.link_ttl)
        return f"{config.web.base_url}/ack/{token}"

