"""The wire models of login sessions (POST, GET and DELETE /api/v1/sessions)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from gateway.contract.batches import ApiModel

# The longest session any gateway hands out, whatever its settings say: a year.
MAX_SESSION_SECONDS = 365 * 24 * 3600


class SessionRequest(ApiModel):
    """The optional body of POST /api/v1/sessions."""

    model_config = ConfigDict(populate_by_name=True, strict=True, extra="forbid")

    expires_in: int | None = Field(
        default=None, alias="expiresIn", ge=1, le=MAX_SESSION_SECONDS,
        description="lifetime in seconds (default and longest: the gateway's session settings)",
    )


class SessionToken(ApiModel):
    """What a login returns. The token is shown once: the gateway keeps only its hash."""

    token: str
    expires_at: int = Field(alias="expiresAt", description="epoch ms")
    expires_in: int = Field(alias="expiresIn", description="the lifetime granted, in seconds")
    csrf_token: str = Field(alias="csrfToken", description="send as X-CSRF-Token on cookie-authenticated writes")
    user: str


class SessionInfo(ApiModel):
    """The session a request was authenticated with."""

    user: str
    admin: bool
    created_at: int = Field(alias="createdAt")
    expires_at: int = Field(alias="expiresAt")
    csrf_token: str = Field(alias="csrfToken")


class SessionRevoked(ApiModel):
    success: bool
    msg: str
