"""Strict parsing of query parameters: anything malformed is a 400 that names the parameter."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from gateway.contract.batches import BatchQuery, BatchSort, BatchState
from gateway.contract.batches import validation_message as validation_message  # re-exported for handlers
from gateway.errors import BadRequest

MAX_PAGE = 10_000
LAST_EVENT_ID = "Last-Event-ID"  # the header a reconnecting EventSource sends: checked like a parameter


def int_param(query: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: must be an integer, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name}: must be between {minimum} and {maximum}, not {value}")
    return value


def text_param(query: Mapping[str, str], name: str) -> str | None:
    """A free-text filter; control characters (a NUL above all) are refused, not passed to SQL."""
    raw = query.get(name)
    if not raw:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise BadRequest(f"{name}: must not contain control characters")
    if len(raw) > 1024:
        raise BadRequest(f"{name}: longer than 1024 characters")
    return raw


def bool_param(query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name}: must be true or false, not {raw!r}")


def batch_query(query: Mapping[str, str], batch_types: Sequence[str]) -> BatchQuery:
    """The batch list's query parameters; `batch_types`: those the gateway's engines offer."""
    batch_type = query.get("batchType") or None
    if batch_type is not None:
        batch_type = batch_type.upper()
        if batch_type not in batch_types:
            raise BadRequest(f"batchType: must be one of {', '.join(batch_types)}, not {query['batchType']!r}")
    states: tuple[BatchState, ...] = ()
    raw_state = query.get("batchState")
    if raw_state:
        parts = [s.strip().upper() for s in raw_state.split(",") if s.strip()]
        unknown = [s for s in parts if s not in BatchState.__members__]
        if unknown:
            raise BadRequest(
                f"batchState: unknown state {unknown[0]!r}; known: {', '.join(BatchState.__members__)}"
            )
        states = tuple(BatchState(s) for s in parts)
    create_time = int_param(query, "createTime", 0, minimum=0, maximum=2**62)
    end_time = int_param(query, "endTime", 0, minimum=0, maximum=2**62)
    if create_time and end_time and end_time < create_time:
        raise BadRequest(f"endTime: {end_time} is before createTime {create_time}")
    try:
        sort = BatchSort(query.get("sort") or BatchSort.CREATE_TIME)
    except ValueError:
        raise BadRequest(f"sort: must be one of {', '.join(BatchSort)}, not {query['sort']!r}") from None
    attempts_of = text_param(query, "attemptsOf")
    if attempts_of is not None:
        try:
            attempts_of = str(uuid.UUID(attempts_of))
        except ValueError:
            raise BadRequest(f"attemptsOf: {attempts_of!r} is not a batch id") from None
    return BatchQuery(
        project=text_param(query, "project"),
        sort=sort,
        key=text_param(query, "key"),
        attempts_of=attempts_of,
        batch_type=batch_type,
        states=states,
        user=text_param(query, "batchUser"),
        name=text_param(query, "batchName"),
        create_time=create_time,
        end_time=end_time,
        offset=int_param(query, "from", 0, minimum=0, maximum=2**31),
        size=int_param(query, "size", 100, minimum=1, maximum=MAX_PAGE),
        desc=bool_param(query, "desc", False),
    )
