"""The OpenAPI document, generated from the pydantic models, and an offline docs page at /docs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel

import gateway
from gateway.api.openapi_parts import (
    BATCH_ID,
    COMMON,
    OFFSET,
    _errors,
    _json,
    _query,
    _ref,
)
from gateway.api.openapi_paths import (
    JOB_MODELS,
    PROJECT_MODELS,
    job_paths,
    livy_paths,
    operations_paths,
    project_paths,
    schedule_paths,
    session_paths,
)
from gateway.azkaban.spec import azkaban_paths
from gateway.contract.batches import (
    AuditList,
    Batch,
    BatchDetails,
    BatchList,
    BatchRequest,
    BatchState,
    BulkRequest,
    BulkResponse,
    CloseBatchResponse,
    Count,
    DropResponse,
    ErrorBody,
    Health,
    LocalLog,
    ReassignBatchRequest,
    ReassignBatchResponse,
)
from gateway.contract.engines import EngineList
from gateway.datameer.spec import datameer_paths
from gateway.kylin.spec import kylin_paths

routes = web.RouteTableDef()

MODELS: tuple[type[BaseModel], ...] = (
    Batch, BatchList, BatchRequest, CloseBatchResponse, ErrorBody, LocalLog, AuditList, Health,
    BatchDetails, BulkRequest, BulkResponse, DropResponse, ReassignBatchRequest, ReassignBatchResponse, Count,
    EngineList,
)
STATES = [state.value for state in BatchState]


def build_spec(batch_types: Sequence[str]) -> dict[str, Any]:
    """The OpenAPI document; `batch_types`: those the installed engines offer."""
    schemas: dict[str, Any] = {}
    for model in (*MODELS, *JOB_MODELS, *PROJECT_MODELS):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    epoch = {"type": "integer", "minimum": 0, "maximum": 2**62}
    list_params = [
        _query("batchType", {"type": "string", "enum": [*batch_types, ""]}, "batch type (empty: any)"),
        _query("batchState", {"type": "string", "pattern": f"^$|^({'|'.join(STATES)})(,({'|'.join(STATES)}))*$"},
               f"one state or a comma-separated set of {STATES}"),
        _query("batchUser", {"type": "string"}, "the batch's (effective) user"),
        _query("batchName", {"type": "string"}, "exact batch name"),
        _query("createTime", epoch, "created at or after (epoch ms)"),
        _query("endTime", epoch, "ended at or before (epoch ms)"),
        _query("from", OFFSET, "offset"),
        _query("size", {"type": "integer", "minimum": 1, "maximum": 10000}, "page size (default 100)"),
        _query("desc", {"type": "boolean"}, "descending order"),
        _query("sort", {"type": "string", "enum": ["createTime", "endTime", "name", "duration", ""]},
               "sort key (empty: createTime)"),
        _query("key", {"type": "string", "maxLength": 1024},
               "an id prefix, or words of the name, the last one by prefix (case-insensitive)"),
        _query("attemptsOf", {"type": "string", "pattern": "^$|^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$"},
               "a batch and all its restarts (empty: no filter)"),
    ]
    paths: dict[str, Any] = {
        "/api/v1/batches": {
            "post": {
                "tags": ["batches"], "summary": "Submit a batch",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(BatchRequest)},
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["batchRequest"],
                        "properties": {
                            "batchRequest": {"type": "string", "description": "a BatchRequest as JSON"},
                            "resourceFile": {"type": "string", "format": "binary"},
                        },
                        "additionalProperties": {
                            "type": "string", "format": "binary",
                            "description": "an extra resource file, its part named by its file name as "
                                           "batchRequest.extraResourcesMap lists it",
                        },
                    }},
                }},
                "responses": {"200": _json(Batch), **_errors(*COMMON, 413, 429)},
            },
            "get": {
                "tags": ["batches"], "summary": "List batches", "parameters": list_params,
                "responses": {"200": _json(BatchList), **_errors(*COMMON)},
            },
        },
        "/api/v1/batches/reassign": {
            "post": {"tags": ["batches"],
                     "summary": "Move a dead instance's active batches to this instance now (admins)",
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": _ref(ReassignBatchRequest)}}},
                     "responses": {"200": _json(ReassignBatchResponse), **_errors(*COMMON, 409)}},
        },
        "/api/v1/admin/batch/count": {
            "get": {"tags": ["batches"], "summary": "How many batches match the list filters (admins)",
                    "parameters": [p for p in list_params if p["name"] in ("batchType", "batchUser", "batchState")],
                    "responses": {"200": _json(Count), **_errors(*COMMON)}},
        },
        "/api/v1/batches/{batchId}": {
            "get": {"tags": ["batches"], "summary": "Get a batch", "parameters": [BATCH_ID],
                    "responses": {"200": _json(Batch), **_errors(*COMMON, 404)}},
            "delete": {"tags": ["batches"], "summary": "Kill a batch", "parameters": [BATCH_ID],
                       "responses": {"200": _json(CloseBatchResponse), **_errors(*COMMON, 404)}},
        },
        "/api/v1/batches/{batchId}/localLog": {
            "get": {"tags": ["batches"], "summary": "Read lines from..from+size-1 of the batch log",
                    "parameters": [BATCH_ID,
                                   _query("from", {"type": "integer", "minimum": -1, "maximum": 2**62},
                                          "first line (-1: tail)"),
                                   _query("size", {"type": "integer", "minimum": 0, "maximum": 10000}, "lines")],
                    "responses": {"200": _json(LocalLog), **_errors(*COMMON, 404)}},
        },
        "/api/v1/batches/{batchId}/log/follow": {
            "get": {"tags": ["batches"], "summary": "Follow the batch log (server-sent events)",
                    "parameters": [BATCH_ID, _query("from", {"type": "integer", "minimum": 0, "maximum": 2**62},
                                                    "first line")],
                    "responses": {"200": {"description": "`log` events (id = line number), then `end`",
                                          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                                  **_errors(*COMMON, 404)}},
        },
        "/api/v1/batches/{batchId}/pause": {
            "post": {"tags": ["job control"], "summary": "Pause: hold a queued batch, or suspend a running one",
                     "parameters": [BATCH_ID], "responses": {"200": _json(Batch), **_errors(*COMMON, 404, 409)}},
        },
        "/api/v1/batches/{batchId}/resume": {
            "post": {"tags": ["job control"], "summary": "Resume a paused batch",
                     "parameters": [BATCH_ID], "responses": {"200": _json(Batch), **_errors(*COMMON, 404, 409)}},
        },
        "/api/v1/batches/{batchId}/restart": {
            "post": {"tags": ["job control"], "summary": "Run a terminal batch again as a new batch",
                     "parameters": [BATCH_ID], "responses": {"200": _json(Batch), **_errors(*COMMON, 404, 409)}},
        },
        "/api/v1/batches/{batchId}/drop": {
            "delete": {"tags": ["job control"], "summary": "Remove a terminal batch, its log and files",
                       "parameters": [BATCH_ID],
                       "responses": {"200": _json(DropResponse), **_errors(*COMMON, 404, 409)}},
        },
        "/api/v1/batches/{batchId}/details": {
            "get": {"tags": ["job control"], "summary": "Lifecycle steps, engine steps and counters, attempts",
                    "parameters": [BATCH_ID], "responses": {"200": _json(BatchDetails), **_errors(*COMMON, 404)}},
        },
        "/api/v1/batches/status": {
            "put": {"tags": ["job control"], "summary": "Bulk action on ids or a filter",
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref(BulkRequest)}}},
                    "responses": {"200": _json(BulkResponse), **_errors(*COMMON)}},
        },
        "/api/v1/engines": {
            "get": {"tags": ["batches"], "summary": "The engines and the batch types this gateway accepts",
                    "responses": {"200": _json(EngineList), **_errors(*COMMON)}},
        },
        "/api/v1/audit": {
            "get": {"tags": ["audit"], "summary": "The audit log (admins)",
                    "parameters": [_query("actor", {"type": "string"}, "who"),
                                   _query("action", {"type": "string"}, "submit, kill, denied, auth_failed, …"),
                                   _query("target", {"type": "string"}, "a batch id"),
                                   _query("since", epoch, "at or after (epoch ms)"),
                                   _query("until", epoch, "at or before (epoch ms)"),
                                   _query("from", OFFSET, "offset"),
                                   _query("size", {"type": "integer", "minimum": 1, "maximum": 10000}, "page")],
                    "responses": {"200": _json(AuditList), **_errors(*COMMON)}},
        },
        "/healthz": {"get": {"tags": ["operations"], "summary": "Liveness", "security": [],
                             "responses": {"200": _json(Health)}}},
        "/openapi.json": {"get": {"tags": ["operations"], "summary": "This document", "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "content": {"application/json": {}}}}}},
        "/docs": {"get": {"tags": ["operations"], "summary": "API documentation page", "security": [],
                          "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
    }
    paths.update(session_paths(schemas))
    paths.update(operations_paths(schemas))
    paths.update(livy_paths(schemas))
    paths.update(kylin_paths(schemas))
    paths.update(datameer_paths(schemas))
    paths.update(azkaban_paths())
    paths.update(job_paths())
    paths.update(project_paths())
    paths.update(schedule_paths(schemas))
    from gateway.api.openapi_overview import overview_paths

    paths.update(overview_paths(schemas))
    return {
        "openapi": "3.1.0",
        "info": {"title": "batchgate", "version": gateway.__version__,
                 "description": "Kyuubi-compatible batch API. Errors are {\"message\": ...}. The Livy batch "
                                "API is under /livy (tag livy), with Livy's errors: {\"msg\": ...}; Kylin's job "
                                "API under /kylin/api/jobs (tag kylin), with Kylin's envelope {code, data, msg}; "
                                "Datameer's job commands (tag datameer), with its {status, reason} failures; "
                                "Azkaban's AJAX API at /, /manager, /executor and /schedule (tag azkaban), "
                                "with its {error} answers."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {
                           "basic": {"type": "http", "scheme": "basic"},
                           "bearer": {"type": "http", "scheme": "bearer",
                                      "description": "a token from POST /api/v1/sessions"},
                           "cookie": {"type": "apiKey", "in": "cookie", "name": "batchgate_session",
                                      "description": "the web page's session; writes need X-CSRF-Token"},
                       }},
        "security": [{"basic": []}, {"bearer": []}, {"cookie": []}],
    }


SPEC_KEY = web.AppKey("openapi_spec", dict)


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[SPEC_KEY])


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>batchgate API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code,pre{background:#f4f4f4;padding:.1rem .3rem}h2{margin-top:2rem}
.m{font-weight:bold;display:inline-block;width:4.5rem}
</style></head><body><h1>batchgate API</h1><p>The machine-readable document is
<a href="/openapi.json">/openapi.json</a>. Every <code>/api</code> call uses HTTP Basic authentication;
errors are <code>{"message": "..."}</code>.</p><main id="ops">Loading…</main>
<script>
fetch('/openapi.json').then(r => r.json()).then(spec => {
  const main = document.getElementById('ops'); main.textContent = '';
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const h = document.createElement('h2');
      h.innerHTML = '<span class="m"></span><code></code>';
      h.querySelector('.m').textContent = method.toUpperCase(); h.querySelector('code').textContent = path;
      const p = document.createElement('p'); p.textContent = op.summary || '';
      const ul = document.createElement('ul');
      for (const prm of op.parameters || []) {
        const li = document.createElement('li');
        li.textContent = prm.name + ' (' + prm.in + '): ' + (prm.description || '');
        ul.appendChild(li);
      }
      const codes = document.createElement('p');
      codes.textContent = 'Responses: ' + Object.keys(op.responses).join(', ');
      main.append(h, p, ul, codes);
    }
  }
});
</script></body></html>"""


@routes.get("/docs")
async def docs(_request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")
