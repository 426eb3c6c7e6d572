"""Login sessions: random tokens that expire and can be revoked, stored only as SHA-256 hashes.

A token is sent as `Authorization: Bearer <token>` or, from the web page, as the HttpOnly cookie
`batchgate_session`. A write authenticated by the cookie must also carry `X-CSRF-Token`: a value derived
from the session token (HMAC-SHA256), handed out at login and by `GET /api/v1/sessions/current`. Another
site can make a browser send the cookie but cannot read it or the CSRF token, so it cannot forge a write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import structlog

from gateway.contract.sessions import SessionInfo, SessionToken
from gateway.errors import BadRequest, Forbidden, Unauthorized
from gateway.security.audit import AuditService
from gateway.security.auth import Authenticator, Principal
from gateway.store.sessions import SessionRepository

log = structlog.get_logger("gateway.sessions")

COOKIE = "batchgate_session"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_BYTES = 32
_CSRF_CONTEXT = b"batchgate-csrf-v1"


class SessionUnauthorized(Unauthorized):
    """A session token that is unknown, expired or revoked. Answered with a Bearer challenge."""


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def session_ref(token_hash: bytes) -> str:
    """A short, non-secret name for a session in log lines (a prefix of the hash, never the token)."""
    return token_hash.hex()[:12]


def csrf_token(token: str) -> str:
    digest = hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_csrf(token: str, presented: str | None) -> None:
    if not presented:
        raise Forbidden(f"{CSRF_HEADER}: required on a write authenticated by the session cookie")
    if not hmac.compare_digest(csrf_token(token).encode(), presented.encode(errors="replace")):
        raise Forbidden(f"{CSRF_HEADER}: does not match the session")


def _plausible(token: str) -> bool:
    return 16 <= len(token) <= 128 and all(c.isalnum() or c in "-_" for c in token)


class SessionService:
    """Creates, resolves and revokes sessions. One indexed lookup per request; no cache, so a
    revocation or an expiry takes effect at once on every instance."""

    def __init__(self, repository: SessionRepository, auth: Authenticator, audit: AuditService, *,
                 default_seconds: int, max_seconds: int) -> None:
        self._audit = audit
        self._sessions = repository
        self._auth = auth
        self._default = default_seconds
        self._max = max_seconds

    async def login(self, principal: Principal, lifetime_seconds: int | None) -> SessionToken:
        lifetime = lifetime_seconds or self._default
        if lifetime > self._max:
            raise BadRequest(f"expiresIn: at most {self._max} seconds on this gateway")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        token_hash = hash_token(token)
        await self._sessions.purge()
        record = await self._sessions.insert(token_hash, principal.name, lifetime * 1000, principal.source_ip)
        await self._audit.record(principal.name, "login", None, source_ip=principal.source_ip,
                                 detail={"session": session_ref(token_hash), "expiresAt": record.expires_at})
        log.info("session.created", user=principal.name, session=session_ref(token_hash),
                 expires_at=record.expires_at)
        return SessionToken(token=token, expires_at=record.expires_at, expires_in=lifetime,
                            csrf_token=csrf_token(token), user=principal.name)

    async def resolve(self, token: str) -> tuple[Principal, SessionInfo]:
        """The user a session token stands for, and the session as the API shows it."""
        if not _plausible(token):
            raise SessionUnauthorized("malformed session token")
        record = await self._sessions.live(hash_token(token))
        if record is None:
            raise SessionUnauthorized("session expired or revoked; log in again")
        if not self._auth.knows(record.user):
            raise SessionUnauthorized(f"user {record.user} no longer exists; log in again")
        principal = self._auth.principal(record.user)
        return principal, SessionInfo(user=record.user, admin=principal.is_admin, created_at=record.created_at,
                                      expires_at=record.expires_at, csrf_token=csrf_token(token))

    async def revoke(self, principal: Principal, token: str) -> bool:
        """End the session of this token (False: it had ended already)."""
        token_hash = hash_token(token)
        revoked = await self._sessions.revoke(token_hash)
        await self._audit.record(principal.name, "logout", None, source_ip=principal.source_ip,
                                 detail={"session": session_ref(token_hash)})
        log.info("session.revoked", user=principal.name, session=session_ref(token_hash))
        return revoked
