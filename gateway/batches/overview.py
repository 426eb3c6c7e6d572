"""Overview: the summary views of batches, for the web page's pictures and for scripts. Batch counts
per time bucket, within the caller's visibility (the list's); and how far the running batches are from
each limit the scheduler enforces."""

from __future__ import annotations

import time

from gateway.batches.scheduler import Limits
from gateway.batches.service import BatchService
from gateway.contract.overview import BatchStats, LimitsView, LimitUsage, StatsBucket, TypeLimit, UserLimit
from gateway.security.auth import Principal
from gateway.store import ListFilter
from gateway.store.stats import StatsRepository


class Overview:
    def __init__(
        self, stats: StatsRepository, service: BatchService, limits: Limits, batch_types: frozenset[str],
    ) -> None:
        self._stats = stats
        self._service = service
        self._limits = limits
        self._types = sorted(batch_types)

    async def batch_stats(self, principal: Principal, start: int, stop: int, bucket: int) -> BatchStats:
        """Counts from `start` (aligned down to a whole bucket) to `stop`, in buckets of `bucket` ms."""
        start -= start % bucket
        scope = await self._service.scoped(principal, ListFilter())
        counts = await self._stats.bucket_counts(start, stop, bucket, int(time.time() * 1000),
                                                 reader=scope.reader, reader_projects=scope.reader_projects)
        buckets = [StatsBucket(start=start + i * bucket, created=c.created, ended=c.ended, queued=c.queued,
                               running=c.running) for i, c in enumerate(counts)]
        return BatchStats(from_=start, to=stop, bucket=bucket, buckets=buckets)

    async def limits(self, principal: Principal) -> LimitsView:
        usage = await self._stats.limit_usage()
        limits = self._limits
        total = LimitUsage(limit=limits.global_max, running=sum(u.running for u in usage),
                           queued=sum(u.queued for u in usage))
        per_type = [TypeLimit(batch_type=t, limit=limits.per_type.get(t, 0),
                              running=sum(u.running for u in usage if u.batch_type == t),
                              queued=sum(u.queued for u in usage if u.batch_type == t)) for t in self._types]
        users = sorted({u.user for u in usage}) if principal.is_admin else [principal.name]
        per_user = [UserLimit(user=name, limit=limits.per_user,
                              running=sum(u.running for u in usage if u.user == name),
                              queued=sum(u.queued for u in usage if u.user == name)) for name in users]
        return LimitsView(total=total, per_user=per_user, per_type=per_type)
