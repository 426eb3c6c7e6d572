"""Errors the client raises. An answer from the gateway carries its HTTP status and its message."""

from __future__ import annotations


class ClientError(Exception):
    """Base of everything the client raises."""


class GatewayUnreachable(ClientError):
    """No HTTP answer at all: a wrong URL, the gateway down, a timeout."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the gateway at {url}: {reason}")
        self.url = url
        self.reason = reason


class ApiError(ClientError):
    """The gateway answered with an error: `status` and the server's `message`."""

    status: int = 0

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        self.retry_after = retry_after


class BadRequest(ApiError):
    """400: invalid input; the message names the field."""


class Unauthorized(ApiError):
    """401: no credentials, a wrong password, or an expired or revoked session."""


class Forbidden(ApiError):
    """403: authenticated, but not allowed."""


class NotFound(ApiError):
    """404: no such batch, job, run or schedule."""


class Conflict(ApiError):
    """409: the state does not allow the action (pausing a finished batch, say)."""


class TooLarge(ApiError):
    """413: a body or an upload over the gateway's limit."""


class RateLimited(ApiError):
    """429: too many submits; `retry_after` says when to try again."""


class Unavailable(ApiError):
    """503: the gateway's database is away. The client retries these by itself first."""


class ServerError(ApiError):
    """500 or any other status: a bug on the gateway's side."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge,
    429: RateLimited, 503: Unavailable,
}


def error_for(status: int, message: str, *, method: str = "", path: str = "",
              retry_after: float | None = None) -> ApiError:
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, message, method=method, path=path, retry_after=retry_after)
