"""Logging to stderr (journald picks it up), with every configured secret redacted.

Connectors never log tokens on purpose; the filter is the second line of defence
against a library that echoes a URL holding `access_token=...`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

from monitor.config import Config
from monitor.secrets import known_secret_values

_TOKEN_IN_URL = re.compile(r"(access_token|token|password)=[^&\s\"']+", re.IGNORECASE)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

    def redact_text(self, text: str) -> str:
        text = _TOKEN_IN_URL.sub(r"\1=***", text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def secret_names(config: Config) -> list[str]:
    names = [n for n in (config.mail.username_env, config.mail.password_env) if n]
    for account in config.accounts:
        names.extend(account.credentials.values())
    return names


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (`[log] format = "json"`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time (not the one at set-up)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(config: Config | None, *, verbose: bool = False) -> None:
    handler = _StderrHandler()
    if config is not None and config.log.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if config is not None:
        handler.addFilter(RedactingFilter(known_secret_values(secret_names(config))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = config.log.level.upper() if config is not None else "INFO"
    root.setLevel(logging.DEBUG if verbose else level)
    for noisy in ("apscheduler", "urllib3", "alembic", "requests_oauthlib", "tweepy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
