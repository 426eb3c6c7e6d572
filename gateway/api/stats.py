"""GET /api/v1/stats/batches: batch counts per time bucket, within the caller's visibility."""

from __future__ import annotations

import re
import time

from aiohttp import web

from gateway.api.middleware import principal
from gateway.api.params import int_param
from gateway.api.responses import model_response
from gateway.errors import BadRequest
from gateway.keys import OVERVIEW

routes = web.RouteTableDef()

DAY_MS = 86_400_000
MAX_BUCKETS = 1000
MAX_SPAN_MS = 400 * DAY_MS
_BUCKET = re.compile(r"^(\d{1,9})([smhd]?)$")
_UNIT_MS = {"": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS}


def bucket_param(raw: str | None, default: int) -> int:
    """A bucket size: milliseconds, or a number with s, m, h or d (30s, 5m, 1h, 1d); at least a second."""
    if raw is None:
        return default
    match = _BUCKET.match(raw.strip())
    if not match:
        raise BadRequest(f"bucket: {raw!r} is not a duration; use milliseconds or 30s, 5m, 1h, 1d")
    bucket = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if not 1000 <= bucket <= 31 * DAY_MS:
        raise BadRequest(f"bucket: must be between 1s and 31d, not {raw!r}")
    return bucket


@routes.get("/api/v1/stats/batches")
async def batch_stats(request: web.Request) -> web.Response:
    """from, to: epoch ms (default: the last 24 hours); bucket (default 1h); at most 1000 buckets."""
    now = int(time.time() * 1000)
    stop = int_param(request.query, "to", now, minimum=1, maximum=2**62)
    start = int_param(request.query, "from", max(0, stop - DAY_MS), minimum=0, maximum=2**62)
    bucket = bucket_param(request.query.get("bucket"), 3_600_000)
    if start >= stop:
        raise BadRequest(f"from: {start} must be before to ({stop})")
    if stop - start > MAX_SPAN_MS:
        raise BadRequest(f"to: at most {MAX_SPAN_MS // DAY_MS} days after from")
    if (stop - (start - start % bucket) + bucket - 1) // bucket > MAX_BUCKETS:
        raise BadRequest(f"bucket: from..to would make more than {MAX_BUCKETS} buckets; take a larger bucket")
    stats = await request.app[OVERVIEW].batch_stats(principal(request), start, stop, bucket)
    return model_response(stats)


@routes.get("/api/v1/limits")
async def limits(request: web.Request) -> web.Response:
    """Batches running and queued against the global, per-type and per-user limits."""
    return model_response(await request.app[OVERVIEW].limits(principal(request)))
