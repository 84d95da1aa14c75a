"""The connector interface and its self-registering registry.

A connector turns one platform's API into normalised `Item`s and a
`SettingsSnapshot`.  Subclasses register themselves through `__init_subclass__`
(no central list to edit); their one-line docstring is the help text shown by
`policywatch connectors`.  Each declares an `Options` pydantic model for the
keys it reads from an account's `options` table, and the credential keys it needs,
so a config error is caught at start-up instead of at the first poll.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.model import PollResult
from monitor.secrets import Secret, read_secret

if TYPE_CHECKING:
    from monitor.config import AccountConfig

_REGISTRY: dict[str, type[Connector]] = {}


class ConnectorError(Exception):
    """A poll of one account failed; the engine records it and moves on.

    `reason` is safe to show to the account owner and to log: it never holds a
    token.  `retry_after` (seconds) asks the engine not to poll before then.
    """

    health = "error"

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """The token is expired, revoked or invalid: a human must renew it."""

    health = "auth"


class PermissionDeniedError(ConnectorError):
    """The token works but lacks a permission the poll needs."""

    health = "permission"


class RateLimitedError(ConnectorError):
    """The platform asked us to slow down; `retry_after` says for how long."""

    health = "rate_limited"


class TransientError(ConnectorError):
    """Timeouts and 5xx that survived the connector's own bounded retries."""

    health = "transient"


class MalformedPayloadError(ConnectorError):
    """The platform (or a replay file) returned something we cannot parse."""

    health = "malformed"


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class AccountPoll:
    """One account to poll with its stored cursors, as handed to `poll_many`."""

    account: AccountConfig
    cursors: Mapping[str, str]


class Connector:
    """Base class; subclasses set `platform` by `class X(Connector, platform="x")`."""

    platform: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    required_credentials: ClassVar[tuple[str, ...]] = ()
    default_api_base_url: ClassVar[str | None] = None
    # How many accounts (or Graph batches) `poll_many` works on at once; a subclass sets
    # its own default and an instance may be given another (`Connector(max_concurrency=)`).
    max_concurrency: int = 8

    def __init_subclass__(cls, platform: str | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if platform is None:
            return  # an abstract intermediate class
        if platform in _REGISTRY and _REGISTRY[platform] is not cls:
            raise TypeError(
                f"platform {platform!r} is already registered by {_REGISTRY[platform].__name__}"
            )
        if not (cls.__doc__ or "").strip():
            raise TypeError(f"connector {cls.__name__} needs a one-line docstring (its help)")
        cls.platform = platform
        _REGISTRY[platform] = cls

    @classmethod
    def help(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]

    @classmethod
    def options_for(cls, account: AccountConfig) -> BaseModel:
        return cls.Options.model_validate(account.options)

    @staticmethod
    def secret(account: AccountConfig, key: str) -> Secret:
        """Read credential `key` (e.g. 'bearer_token_env') of an account."""
        return read_secret(account.credentials[key])

    def base_url(self, account: AccountConfig) -> str:
        url = account.api_base_url or self.default_api_base_url
        if url is None:
            raise ConnectorError(f"{self.platform} connector has no API base URL")
        return url.rstrip("/")

    def poll(self, account: AccountConfig, cursors: Mapping[str, str], now: datetime) -> PollResult:
        """Return what is new since `cursors`; raise ConnectorError on failure."""
        raise NotImplementedError

    def poll_many(
        self, polls: Sequence[AccountPoll], now: datetime
    ) -> dict[str, PollResult | ConnectorError]:
        """Poll several accounts of this platform; override to batch requests.

        The default polls one by one; a failure of one account never stops the others.
        """
        results: dict[str, PollResult | ConnectorError] = {}
        for p in polls:
            try:
                results[p.account.id] = self.poll(p.account, p.cursors, now)
            except ConnectorError as exc:
                results[p.account.id] = exc
        return results

    def hide(self, account: AccountConfig, external_id: str) -> None:
        """Hide an item on the platform (only with moderation = "hide"); never delete."""
        raise ConnectorError(f"{self.platform} connector cannot hide items")

    def close(self) -> None:
        """Release HTTP sessions; called when the daemon stops or reloads."""


def load_connectors() -> None:
    """Import every module of this package so each connector registers itself."""
    import connectors

    for info in pkgutil.iter_modules(connectors.__path__):
        if info.name not in {"base", "__init__"} and not info.name.startswith("_"):
            importlib.import_module(f"connectors.{info.name}")


def registered_platforms() -> dict[str, type[Connector]]:
    load_connectors()
    return dict(sorted(_REGISTRY.items()))


def connector_class(platform: str) -> type[Connector]:
    load_connectors()
    try:
        return _REGISTRY[platform]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown platform {platform!r}; known: {known}") from None


def validate_account_options(account: AccountConfig) -> tuple[tuple[str | int, ...], str] | None:
    """Check an account against its connector; return (key path, message) on error."""
    try:
        cls = connector_class(account.platform)
    except KeyError as exc:
        return ("platform",), str(exc.args[0])
    for key in cls.required_credentials:
        if key not in account.credentials:
            return ("credentials", key), (
                f"the {account.platform} connector needs credentials.{key} "
                "(the name of an environment variable holding the token)"
            )
    try:
        cls.options_for(account)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"] if err["type"] != "extra_forbidden" else "unknown option"
        return ("options", *err["loc"]), msg
    return None
