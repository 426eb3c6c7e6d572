"""Authentication: HTTP Basic against an htpasswd (bcrypt) file, or open mode on loopback."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import structlog

from gateway.errors import Unauthorized

try:
    from asyncinotify import Inotify, Mask
except ImportError:  # not Linux: the users file is checked on a timer
    Inotify = None  # type: ignore[assignment,misc]

log = structlog.get_logger("gateway.auth")

ANONYMOUS = "anonymous"
CACHE_SECONDS = 300.0
RELOAD_SECONDS = 5.0  # without inotify only
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
    """Verifies Basic credentials. bcrypt runs in a thread; verified pairs are cached briefly. The users file
    is read when the gateway starts and again whenever its directory says it changed (`watch`)."""

    def __init__(self, users_file: Path | None, admins: list[str]) -> None:
        self._file = users_file
        self._admins = frozenset(admins)
        self._users: dict[str, bytes] = {}
        self._signature: tuple[int, int, int] | None = None
        # user -> (sha256 of the password, expiry); only successful checks are kept.
        self._verified: dict[str, tuple[bytes, float]] = {}
        self._watch: asyncio.Task[None] | None = None
        if users_file is not None:
            self._load()

    @property
    def open_mode(self) -> bool:
        return self._file is None

    def _load(self) -> bool:
        """Reads the file if it is not the one read last; whether it was (blocking: call it in a thread)."""
        assert self._file is not None
        info = self._file.stat()  # follows a symlink, as a mounted Kubernetes secret is
        signature = (info.st_mtime_ns, info.st_size, info.st_ino)
        if signature == self._signature:
            return False
        users = parse_htpasswd(self._file.read_text())
        self._users, self._signature = users, signature
        self._verified.clear()
        return True

    def start(self) -> None:
        if self._file is not None:
            self._watch = asyncio.create_task(self._follow(), name="users-file")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _follow(self) -> None:
        """Re-reads the users file as an operator changes it, until cancelled. The watch is on its directory:
        an editor or `htpasswd` may write the file in place or replace it by a rename, and a Kubernetes
        secret swaps a symlink beside it. Without inotify (not Linux), a check every RELOAD_SECONDS."""
        assert self._file is not None
        if Inotify is None:
            while True:
                await asyncio.sleep(RELOAD_SECONDS)
                await self._reload()
        directory = self._file.parent
        with Inotify() as inotify:
            inotify.add_watch(directory, Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.CREATE | Mask.ATTRIB)
            await self._reload()  # a change between the first read and the watch
            async for _event in inotify:
                await self._reload()

    async def _reload(self) -> None:
        try:
            if await asyncio.to_thread(self._load):
                log.info("auth.users_reloaded", users=len(self._users))
        except (OSError, ValueError) as exc:  # a file half written or removed: keep the users read last
            log.warning("auth.users_reload_failed", error=str(exc))

    def principal(self, name: str) -> Principal:
        return Principal(name=name, is_admin=name in self._admins)

    def knows(self, name: str) -> bool:
        """Whether the user still exists: a session outlives nobody's removal from the users file."""
        return self.open_mode or name in self._users

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
