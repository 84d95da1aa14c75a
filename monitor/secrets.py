"""Where tokens come from: the environment or the systemd credentials directory.

A token is wrapped in `Secret` as soon as it is read so that a stray `repr`,
log line or exception message shows `Secret('***')` instead of the value.
"""

from __future__ import annotations

import os
from pathlib import Path


class MissingSecretError(LookupError):
    """A configured credential is not available; the message names the variable only."""


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret(name: str, environ: dict[str, str] | None = None) -> Secret:
    """Read credential NAME from $CREDENTIALS_DIRECTORY/NAME (systemd) or the environment."""
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / name
        if path.is_file():
            return Secret(path.read_text(encoding="utf-8").strip())
    value = env.get(name)
    if value:
        return Secret(value)
    raise MissingSecretError(
        f"credential {name} is not set (environment variable or systemd credential {name})"
    )


def known_secret_values(names: list[str]) -> list[str]:
    """The values of the named secrets that are set, for log redaction."""
    out = []
    for name in names:
        try:
            out.append(read_secret(name).reveal())
        except MissingSecretError:
            continue
    return [v for v in out if len(v) >= 6]
