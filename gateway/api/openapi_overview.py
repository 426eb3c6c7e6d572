"""The OpenAPI paths of the live and summary views: batch events, batch statistics, limits."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_parts import BATCH_ID, COMMON, _errors, _json, _query
from gateway.contract.batches import BatchSnapshot
from gateway.contract.overview import BatchStats, LimitsView


def overview_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    for model in (BatchSnapshot, BatchStats, LimitsView):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    ids = {**BATCH_ID, "in": "query", "required": False, "schema": {"type": "string"},
           "description": "only these batches (ids, comma-separated or repeated, at most 100), in any state"}
    epoch = {"type": "integer", "minimum": 0, "maximum": 2**62}
    return {
        "/api/v1/stats/batches": {
            "get": {"tags": ["overview"], "summary": "Batch counts per time bucket, within what the caller may see",
                    "description": "For each bucket: batches created in it (by their state now), ended in it (by "
                                   "their end state), and how many were queued and running at some moment of it.",
                    "parameters": [_query("from", epoch, "epoch ms (default: 24 hours before to); aligned down to "
                                                         "a whole bucket"),
                                   _query("to", {**epoch, "minimum": 1}, "epoch ms (default: now)"),
                                   _query("bucket", {"type": "string", "pattern": "^[0-9]{1,9}[smhd]?$"},
                                          "milliseconds, or 30s, 5m, 1h, 1d (default 1h; 1s..31d; at most "
                                          "1000 buckets)")],
                    "responses": {"200": _json(BatchStats), **_errors(*COMMON)}},
        },
        "/api/v1/limits": {
            "get": {"tags": ["overview"], "summary": "Batches running and queued against each limit",
                    "responses": {"200": _json(LimitsView), **_errors(*COMMON)}},
        },
        "/api/v1/batches/events": {
            "get": {"tags": ["batches"], "summary": "Server-sent batch changes the caller may see, as they happen",
                    "description": "A `snapshot` event (BatchSnapshot: the batches named, or the caller's "
                                   "queued, paused and running ones), then one `batch` event (a Batch) per "
                                   "change of state, app state or app id; a new `snapshot` when changes may "
                                   "have been missed. Endless; a comment every 15 s keeps it alive.",
                    "parameters": [ids, _query("snapshot", {"type": "boolean"}, "send the snapshot first "
                                                                                  "(default true)")],
                    "responses": {"200": {"description": "`snapshot` and `batch` events",
                                          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                                  **_errors(*COMMON, 404)}},
        },
    }
