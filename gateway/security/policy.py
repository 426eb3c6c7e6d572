"""Authorization and input rules: who may see, change or impersonate, and what a request may contain.

Every endpoint asks this one module, so that there is a single code path to review.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

from gateway.contract.batches import BatchRequest
from gateway.errors import BadRequest, Forbidden
from gateway.security.auth import Principal
from gateway.settings import SecuritySettings
from gateway.store import BatchRecord


class Policy:
    def __init__(self, settings: SecuritySettings) -> None:
        self._settings = settings
        self._deny = [(p, _pattern(p)) for p in settings.conf_deny_patterns]
        self._dirs = [d.resolve() for d in settings.resource_dirs]
        self._schemes = {s.lower() for s in settings.resource_schemes}
        self._groups: dict[str, set[str]] = {g: set(members) for g, members in settings.groups.items()}

    # --- batches -------------------------------------------------------------------------

    # `roles` are what the caller holds on the batch through a job (or project) it belongs to:
    # READ lets them read it, EXECUTE lets them act on it.

    def may_read(self, who: Principal, batch: BatchRecord, roles: frozenset[str] = frozenset()) -> bool:
        return who.is_admin or who.name in (batch.batch_user, batch.real_user) or "READ" in roles

    def may_modify(self, who: Principal, batch: BatchRecord, roles: frozenset[str] = frozenset()) -> bool:
        return who.is_admin or who.name in (batch.batch_user, batch.real_user) or "EXECUTE" in roles

    def check_read(self, who: Principal, batch: BatchRecord, roles: frozenset[str] = frozenset()) -> None:
        if not self.may_read(who, batch, roles):
            raise Forbidden(f"batch {batch.id} belongs to another user")

    def check_modify(self, who: Principal, batch: BatchRecord, roles: frozenset[str] = frozenset()) -> None:
        if not self.may_modify(who, batch, roles):
            raise Forbidden(f"batch {batch.id} belongs to another user")

    def list_user(self, who: Principal, requested: str | None) -> str | None:
        """The batchUser a list may use: admins any, others only themselves."""
        if who.is_admin:
            return requested
        if requested and requested != who.name:
            raise Forbidden(f"batchUser: user {who.name} may only list their own batches")
        return who.name

    def check_admin(self, who: Principal, what: str) -> None:
        if not who.is_admin:
            raise Forbidden(f"only admins may {what}")

    # --- impersonation -------------------------------------------------------------------

    def effective_user(self, who: Principal, proxy: str | None, field: str) -> str:
        """The user a batch runs as: the caller, or a proxy user the caller may act as."""
        if proxy is None or proxy == who.name:
            return who.name
        if who.is_admin or self._may_impersonate(who.name, proxy):
            return proxy
        raise Forbidden(f"{field}: user {who.name} may not act as {proxy}")

    def _may_impersonate(self, user: str, target: str) -> bool:
        for rule in self._settings.impersonation.get(user, ()):
            if rule == "*" or rule == target:
                return True
            if rule.startswith("@") and target in self._groups.get(rule[1:], ()):
                return True
        return False

    # --- request content -----------------------------------------------------------------

    def check_request(self, request: BatchRequest) -> None:
        s = self._settings
        if len(request.args) > s.max_args:
            raise BadRequest(f"args: {len(request.args)} arguments, more than the limit of {s.max_args}")
        if len(request.conf) > s.max_conf_entries:
            raise BadRequest(f"conf: {len(request.conf)} entries, more than the limit of {s.max_conf_entries}")
        conf_bytes = sum(len(k) + len(v) for k, v in request.conf.items())
        if conf_bytes > s.max_conf_bytes:
            raise BadRequest(f"conf: {conf_bytes} bytes, more than the limit of {s.max_conf_bytes}")
        for key in request.conf:
            self.check_conf_key(key)

    def check_conf_key(self, key: str) -> None:
        """A conf key must be plain text, and on no deny-list (matched case-insensitively, trimmed)."""
        if not key or any(c.isspace() or unicodedata.category(c) in _CONTROL for c in key):
            raise BadRequest(f"conf: key {key!r} holds whitespace or control characters")
        normalized = key.strip()
        for text, pattern in self._deny:
            if pattern.fullmatch(normalized):
                raise Forbidden(f"conf.{key}: this key is not allowed on this gateway (denied by {text!r})")

    def check_resource(self, resource: str, field: str = "resource") -> None:
        """Local paths must lie in an allowed dir; URLs must use an allowed scheme."""
        parts = urlsplit(resource)
        if parts.scheme and len(parts.scheme) > 1:  # "C:" is not a scheme
            if parts.scheme.lower() not in self._schemes:
                raise BadRequest(f"{field}: scheme {parts.scheme!r} is not allowed; allowed: {sorted(self._schemes)}")
            if parts.scheme.lower() not in ("file", "local"):
                return
            resource = parts.path
        if not self._dirs or "/" not in resource:
            return  # no dir rules, or a program name looked up on PATH (LOCAL has its own allow-list)
        path = Path(resource).resolve()
        if not any(path == d or d in path.parents for d in self._dirs):
            raise Forbidden(f"{field}: {resource!r} is outside the allowed dirs")


# Control and format characters (a zero-width space, a direction mark), line and paragraph separators.
_CONTROL = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _pattern(text: str) -> re.Pattern[str]:
    """A deny entry as a regular expression: "*" matches anything, the rest is literal, case is ignored."""
    return re.compile(".*".join(re.escape(part) for part in text.strip().split("*")), re.IGNORECASE | re.DOTALL)
