"""The deployment configuration: one TOML file, validated strictly before anything runs.

The TOML shape is a public contract (see README): later versions may add keys but
never rename these.  Every model forbids unknown keys so a typo is an error at
start-up instead of a silently ignored setting.  Secrets are never in the file:
keys ending in `_env` name an environment variable (or systemd credential) and a
value that looks like a token rather than a variable name is rejected.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.retention import RetentionSettings
from monitor.rules.settings import RulesSettings

DEFAULT_CONFIG_PATH = Path("config/policywatch.toml")
CONFIG_ENV = "POLICYWATCH_CONFIG"

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """The configuration is unusable; the message names file, key path and expectation."""

    exit_code = 2


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            "expected the NAME of an environment variable or systemd credential "
            "(upper-case letters, digits and _), not a literal secret"
        )
    return value


def _identifier(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("expected a lower-case id of letters, digits, '-', '_' or '.'")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("expected an email address like name@school.example")
    return value.lower()


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError("expected a duration like '30s', '5m', '1h' or '1d'")


def _positive(value: timedelta) -> timedelta:
    if value.total_seconds() <= 0:
        raise ValueError("expected a duration greater than zero")
    return value


def _clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("expected a time of day like '07:00'")


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone like 'America/Toronto'") from None
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
Identifier = Annotated[str, AfterValidator(_identifier)]
Email = Annotated[str, AfterValidator(_email)]
Duration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]
ClockTime = Annotated[time, BeforeValidator(_clock)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class DatabaseConfig(Strict):
    url: str = "sqlite:///var/policywatch.db"

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql+psycopg://", "postgresql://")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value


class MailConfig(Strict):
    sender: Email
    host: str | None = None
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    outbox_dir: Path | None = None
    timeout: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _one_transport(self) -> MailConfig:
        if (self.host is None) == (self.outbox_dir is None):
            raise ValueError("set exactly one of 'host' (SMTP) or 'outbox_dir' (.eml files)")
        return self


class ScheduleConfig(Strict):
    timezone: TimeZoneName = "America/Toronto"
    poll_interval: Duration = timedelta(minutes=5)
    digest_time: ClockTime = time(7, 0)
    stale_after: Duration = timedelta(hours=24)


class SchoolConfig(Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    language: Literal["en", "fr"] = "en"
    principal: Email
    escalation: list[Email] = []
    staff: list[Email] = []
    timezone: TimeZoneName | None = None

    def is_staff(self, email: str | None) -> bool:
        if not email:
            return False
        email = email.lower()
        return email == self.principal or email in self.staff or email in self.escalation


class AccountConfig(Strict):
    id: Identifier
    platform: str
    handle: str = Field(min_length=1, max_length=100)
    external_id: str = Field(min_length=1, max_length=64)
    school: Identifier
    kind: Literal["school", "classroom", "department"]
    owners: list[Email] = Field(min_length=1)
    credentials: dict[str, EnvName] = {}
    api_base_url: str | None = None
    replay_file: Path | None = None
    moderation: Literal["off", "hide"] = "off"
    settings_interval: Duration = timedelta(hours=1)
    enabled: bool = True
    office_hours: str | None = None
    role_holders: dict[str, Email] = {}
    options: dict[str, Any] = {}

    @field_validator("office_hours")
    @classmethod
    def _office_hours(cls, value: str | None) -> str | None:
        if value is not None:
            from monitor.hours import parse_office_hours

            parse_office_hours(value)
        return value

    @field_validator("credentials")
    @classmethod
    def _credential_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key.endswith("_env"):
                raise ValueError(
                    f"credential key {key!r} must end in '_env' and name an environment "
                    'variable, e.g. bearer_token_env = "GRADE5_X_TOKEN"'
                )
        return value

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+(:\d+)?(/\S*)?$", value):
            raise ValueError("expected an http:// or https:// base URL")
        return value.rstrip("/") if value else value


class DigestConfig(Strict):
    send_empty_digest: bool = False
    max_listed: int = Field(default=50, ge=1, le=1000)  # the rest are counted, not listed
    summary_to_principal: bool = True


class ReportsConfig(Strict):
    template_dir: Path | None = None  # a board's overrides, looked up before the shipped ones

    @field_validator("template_dir")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"template directory {value} does not exist")
        return value


class LogConfig(Strict):
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class MetricsConfig(Strict):
    """Prometheus /metrics endpoint, served by `policywatch run` when a port is set."""

    port: int | None = Field(default=None, ge=1, le=65535)
    listen: str = "127.0.0.1"


class WorkersConfig(Strict):
    """Scale-out: how long a worker holds the accounts it claimed before others may take them."""

    lease: Duration = timedelta(minutes=5)


class AlertsConfig(Strict):
    escalate_after: Duration = timedelta(minutes=30)


class BoardConfig(Strict):
    name: str = "School board"
    safety_contacts: list[Email] = []
    it_contacts: list[Email] = []


class WebConfig(Strict):
    """The acknowledgement page: the one-click link in every urgent email."""

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    base_url: str = "http://127.0.0.1:8080"
    key_env: EnvName | None = None
    link_ttl: Duration = timedelta(days=7)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+(:\d+)?(/\S*)?$", value):
            raise ValueError("expected an http:// or https:// base URL")
        return value.rstrip("/")


class Config(Strict):
    database: DatabaseConfig = DatabaseConfig()
    mail: MailConfig
    schedule: ScheduleConfig = ScheduleConfig()
    digest: DigestConfig = DigestConfig()
    alerts: AlertsConfig = AlertsConfig()
    workers: WorkersConfig = WorkersConfig()
    retention: RetentionSettings = RetentionSettings()
    rules: RulesSettings = RulesSettings()
    log: LogConfig = LogConfig()
    metrics: MetricsConfig = MetricsConfig()
    reports: ReportsConfig = ReportsConfig()
    board: BoardConfig = BoardConfig()
    web: WebConfig = WebConfig()
    schools: list[SchoolConfig] = Field(min_length=1)
    accounts: list[AccountConfig] = []
    state_dir: Path = Path("var")
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        _unique("schools", [s.id for s in self.schools])
        _unique("accounts", [a.id for a in self.accounts])
        schools = {s.id: s for s in self.schools}
        for i, account in enumerate(self.accounts):
            school = schools.get(account.school)
            if school is None:
                raise _LocatedError(
                    ("accounts", i, "school"),
                    f"unknown school {account.school!r}; known: {', '.join(sorted(schools))}",
                )
            for j, owner in enumerate(account.owners):
                if not school.is_staff(owner):
                    raise _LocatedError(
                        ("accounts", i, "owners", j),
                        f"{owner} is not staff of school {school.id!r} (add them to its staff)",
                    )
        return self

    @property
    def base_dir(self) -> Path:
        """Relative paths in the config (rule packs, lists) are read from its folder."""
        return self.source.parent if self.source is not None else Path.cwd()

    def school(self, school_id: str) -> SchoolConfig:
        for school in self.schools:
            if school.id == school_id:
                return school
        raise KeyError(school_id)

    def account(self, account_id: str) -> AccountConfig:
        for account in self.accounts:
            if account.id == account_id:
                return account
        raise KeyError(account_id)

    def school_timezone(self, school: SchoolConfig) -> ZoneInfo:
        return ZoneInfo(school.timezone or self.schedule.timezone)


class _LocatedError(ValueError):
    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _unique(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            raise _LocatedError((section, i, "id"), f"duplicate id {ident!r}")
        seen.add(ident)


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(source: Path | str, error: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in error.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _LocatedError):
            lines.append(f"  {_path(ctx_error.loc)}: {ctx_error}")
            continue
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see config/policywatch.example.toml)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {_path(loc)}: {msg}")
    return "\n".join(lines)


def resolve_config_path(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    return DEFAULT_CONFIG_PATH


def parse_config(data: dict[str, Any], source: Path | str = "<config>") -> Config:
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    from connectors.base import validate_account_options

    for i, account in enumerate(config.accounts):
        problem = validate_account_options(account)
        if problem is not None:
            key, message = problem
            raise ConfigError(
                f"{source}: invalid configuration\n  {_path(('accounts', i, *key))}: {message}"
            )
    return config


def load_config(path: Path | None = None) -> Config:
    """Read and validate the configuration; relative paths are resolved against the CWD."""
    path = resolve_config_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found (use --config FILE or set {CONFIG_ENV})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = parse_config(data, path)
    return config.model_copy(update={"source": path})
