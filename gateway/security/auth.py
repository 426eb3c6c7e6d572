"""Authentication: HTTP Basic against an htpasswd (bcrypt) file, or open mode on loopback."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import structlog

from gateway.errors import Unauthorized

log = structlog.get_logger("gateway.auth")

ANONYMOUS = "anonymous"
CACHE_SECONDS = 300.0
BCRYPT_MAX_BYTES = 72
# Checked when the user is unknown, so that a wrong user name costs as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"batchgate-dummy", bcrypt.gensalt(rounds=10))


@dataclass(frozen=True)
class Principal:
    name: str
    is_admin: bool
    source_ip: str | None = None

    def at(self, source_ip: str | None) -> Principal:
        return Principal(self.name, self.is_admin, source_ip)


def parse_htpasswd(text: str) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, digest = line.partition(":")
        if not sep or not digest.startswith(("$2y$", "$2b$", "$2a$")):
            raise ValueError(f"users file line {number}: expected 'user:<bcrypt hash>' (htpasswd -B)")
        users[user] = digest.encode()
    return users


class Authenticator:
    """Verifies Basic credentials. bcrypt runs in a thread; verified pairs are cached briefly."""

    def __init__(self, users_file: Path | None, admins: list[str]) -> None:
        self._file = users_file
        self._admins = frozenset(admins)
        self._users: dict[str, bytes] = {}
        self._mtime = 0.0
        self._checked = 0.0
        # user -> (sha256 of the password, expiry); only successful checks are kept.
        self._verified: dict[str, tuple[bytes, float]] = {}
        if users_file is not None:
            self._load()

    @property
    def open_mode(self) -> bool:
        return self._file is None

    def _load(self) -> None:
        assert self._file is not None
        mtime = self._file.stat().st_mtime
        self._users = parse_htpasswd(self._file.read_text())
        self._mtime = mtime
        self._verified.clear()

    def _maybe_reload(self) -> None:
        # An operator edits the users file in place; pick it up within a few seconds.
        now = time.monotonic()
        if self._file is None or now - self._checked < 5.0:
            return
        self._checked = now
        try:
            if os.stat(self._file).st_mtime != self._mtime:
                self._load()
                log.info("auth.users_reloaded", users=len(self._users))
        except (OSError, ValueError) as exc:
            log.warning("auth.users_reload_failed", error=str(exc))

    def principal(self, name: str) -> Principal:
        return Principal(name=name, is_admin=name in self._admins)

    def knows(self, name: str) -> bool:
        """Whether the user still exists: a session outlives nobody's removal from the users file."""
        if self.open_mode:
            return True
        self._maybe_reload()
        return name in self._users

    async def authenticate(self, header: str | None) -> Principal:
        credentials = _parse_basic(header)
        if self.open_mode:
            return self.principal(credentials[0] if credentials else ANONYMOUS)
        if credentials is None:
            raise Unauthorized("authentication required: send HTTP Basic credentials")
        user, password = credentials
        if not password:  # says nothing about the user; and no account is opened by an empty password
            raise Unauthorized("no password given: send the user's password with HTTP Basic")
        if len(password.encode()) > BCRYPT_MAX_BYTES:
            # bcrypt reads at most 72 bytes (and refuses more): a longer password matches no stored hash.
            raise Unauthorized("invalid user name or password")
        self._maybe_reload()
        digest = hashlib.sha256(password.encode()).digest()
        cached = self._verified.get(user)
        if cached is not None and cached[1] > time.monotonic() and hmac.compare_digest(cached[0], digest):
            return self.principal(user)
        stored = self._users.get(user)
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), stored or _DUMMY_HASH)
        if not ok or stored is None:
            raise Unauthorized("invalid user name or password")
        self._verified[user] = (digest, time.monotonic() + CACHE_SECONDS)
        return self.principal(user)


def _parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized(f"unsupported authorization scheme {scheme!r}; use Basic")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user or len(user) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in user):
        raise Unauthorized("malformed Basic credentials")
    return user, password
