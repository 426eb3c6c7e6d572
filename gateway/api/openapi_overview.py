"""The OpenAPI paths of the live and summary views: batch events, batch statistics, limits."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi import BATCH_ID, COMMON, _errors, _query
from gateway.contract.batches import BatchSnapshot


def overview_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    for model in (BatchSnapshot,):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    ids = {**BATCH_ID, "in": "query", "required": False, "schema": {"type": "string"},
           "description": "only these batches (ids, comma-separated or repeated, at most 100), in any state"}
    return {
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
