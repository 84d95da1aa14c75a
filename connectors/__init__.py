"""Platform connectors: each module registers one `Connector` subclass by importing it."""

from connectors.base import (
    AuthError,
    Connector,
    ConnectorError,
    MalformedPayloadError,
    PermissionDeniedError,
    RateLimitedError,
    TransientError,
    connector_class,
    load_connectors,
    registered_platforms,
)

__all__ = [
    "AuthError",
    "Connector",
    "ConnectorError",
    "MalformedPayloadError",
    "PermissionDeniedError",
    "RateLimitedError",
    "TransientError",
    "connector_class",
    "load_connectors",
    "registered_platforms",
]
