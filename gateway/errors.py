"""Domain errors. Each carries the HTTP status it maps to; only the error middleware reads it."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway reports to a client with a message."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(GatewayError):
    """The input is invalid; the message names the field."""

    status = 400


class Unauthorized(GatewayError):
    """No credentials, or wrong ones."""

    status = 401


class Forbidden(GatewayError):
    """The caller is known but may not do this."""

    status = 403


class NotFound(GatewayError):
    """No such batch (or it is not visible to the caller)."""

    status = 404


class Conflict(GatewayError):
    """The state of the resource does not allow the action."""

    status = 409


class TooLarge(GatewayError):
    """A body or an upload is over its limit."""

    status = 413


class TooManyRequests(GatewayError):
    """Over a rate limit; retry after `retry_after` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    """The database is unreachable; the client should retry."""

    status = 503
    retry_after = 2
