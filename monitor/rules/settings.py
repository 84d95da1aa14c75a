"""`[rules]` in the deployment TOML: which packs run and the board's data they need.

Like the rest of the configuration it forbids unknown keys (a typo must fail at
start-up) and never holds a secret: the protected-students salt is named by an
environment variable, and the names file path is resolved against the config's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.rules.personal import public_address_key

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class RulesSettings(BaseModel):
    """Rule-engine settings; every field has a default so `[rules]` may be omitted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    languages: list[Literal["en", "fr"]] = Field(default=["en", "fr"], min_length=1)
    """Shipped language packs to load (the language-neutral 'common' pack always loads)."""
    packs: list[Path] = []
    """Board packs, applied in order after the shipped ones; a rule with an existing id
    replaces it, a new id adds a rule."""
    disabled_rules: list[str] = []
    """Rule ids to switch off without writing a pack."""
    protected_students_file: Path | None = None
    """UTF-8 file, one 'First Last' or 'Last, First' per line; only salted hashes are kept."""
    protected_salt_env: str | None = None
    """NAME of the environment variable (or systemd credential) holding the salt."""
    allowed_domains: list[str] = []
    """Link allowlist: links to these domains and their subdomains are not spam."""
    public_phone_numbers: list[str] = []
    """The board's and schools' own public numbers (office, fax, transport): never
    reported as a person's personal information.  Canadian youth helplines are built in."""
    public_addresses: list[str] = []
    """The schools' and board's own street addresses ("250 Riverside Dr"): a comment or
    post that repeats one (house number and street name) is not reporting a home."""
    repeat_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    """How long a repeated comment or a spam burst is remembered (in memory)."""
    repeat_capacity: int = Field(default=10_000, ge=100, le=1_000_000)
    """Most distinct recent comments remembered (bounds memory)."""

    @field_validator("protected_salt_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "expected the NAME of an environment variable or systemd credential "
                "(upper-case letters, digits and _), not a literal salt"
            )
        return value

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            domain = value.strip().lower().removeprefix("www.").rstrip(".")
            if not _DOMAIN.match(domain):
                raise ValueError(f"{value!r} is not a domain name like 'dsb1.edu.on.ca'")
            out.append(domain)
        return out

    @field_validator("public_phone_numbers")
    @classmethod
    def _phones(cls, values: list[str]) -> list[str]:
        for value in values:
            digits = "".join(c for c in value if c.isdigit())
            if not 3 <= len(digits) <= 15:
                raise ValueError(f"{value!r} is not a phone number like '705-555-0100'")
        return values

    @field_validator("public_addresses")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            if public_address_key(value) is None:
                raise ValueError(f"{value!r} is not a street address like '250 Riverside Dr'"
                                 " (a house number, then the street's name)")
        return values

    @field_validator("disabled_rules")
    @classmethod
    def _rule_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _RULE_ID.match(value):
                raise ValueError(f"{value!r} is not a rule id")
        return values

    @model_validator(mode="after")
    def _salt_with_file(self) -> RulesSettings:
        if self.protected_students_file is not None and self.protected_salt_env is None:
            raise ValueError("protected_students_file needs protected_salt_env (the salt's "
                             "environment variable name)")
        return self

    def resolve(self, base_dir: Path) -> RulesSettings:
        """The same settings with relative paths made relative to `base_dir`."""
        def fix(p: Path) -> Path:
            return p if p.is_absolute() else base_dir / p

        return self.model_copy(update={
            "packs": [fix(p) for p in self.packs],
            "protected_students_file": (
                fix(self.protected_students_file) if self.protected_students_file else None
            ),
        })
