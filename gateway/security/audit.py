"""AuditService: every audited action goes through here (the middleware's denials, logins, kills, job
control, schedules, SLAs), and admins read the log as the API's AuditList."""

from __future__ import annotations

from typing import Any

from gateway.contract.batches import AuditEntry, AuditList
from gateway.security.auth import Principal
from gateway.security.policy import Policy
from gateway.store.audit import AuditFilter, AuditRepository


class AuditService:
    def __init__(self, repository: AuditRepository, policy: Policy) -> None:
        self._repository = repository
        self._policy = policy

    async def record(
        self, actor: str, action: str, target: str | None, *, allowed: bool = True,
        source_ip: str | None = None, detail: dict[str, Any] | None = None,
    ) -> None:
        await self._repository.record(actor, action, target, allowed=allowed, source_ip=source_ip, detail=detail)

    async def entries(self, who: Principal, *, actor: str | None = None, action: str | None = None,
                      target: str | None = None, since: int = 0, until: int = 0, offset: int = 0,
                      size: int = 100) -> AuditList:
        """A page of the audit log, newest first, for admins."""
        self._policy.check_admin(who, "read the audit log")
        flt = AuditFilter(actor=actor, action=action, target=target, since=since, until=until, offset=offset,
                          size=size)
        total, rows = await self._repository.page(flt)
        return AuditList(from_=flt.offset, total=total, entries=[
            AuditEntry(id=r.id, time=r.at, actor=r.actor, action=r.action, target=r.target, allowed=r.allowed,
                       source_ip=r.source_ip, detail=r.detail)
            for r in rows
        ])

    async def recent_starts(self, real_user: str, since_ms: int) -> tuple[int, int | None]:
        return await self._repository.recent_starts(real_user, since_ms)
