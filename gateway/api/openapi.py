"""The OpenAPI document, generated from the pydantic models, and an offline docs page at /docs."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

import gateway
from gateway.models import (
    AuditList,
    Batch,
    BatchList,
    BatchRequest,
    CloseBatchResponse,
    ErrorBody,
    Health,
    LocalLog,
)
from gateway.settings import ALL_BATCH_TYPES

routes = web.RouteTableDef()

MODELS: tuple[type[BaseModel], ...] = (
    Batch, BatchList, BatchRequest, CloseBatchResponse, ErrorBody, LocalLog, AuditList, Health,
)
STATES = ["INITIALIZED", "PAUSED", "PENDING", "RUNNING", "FINISHED", "ERROR", "CANCELED"]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad input; the message names the field", 401: "no or bad credentials",
            403: "not allowed", 404: "no such batch", 409: "conflict", 413: "too large",
            429: "rate limited (see Retry-After)", 503: "database unavailable (see Retry-After)"}
    return {str(c): _json(ErrorBody, text[c]) for c in codes}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


BATCH_ID = {"name": "batchId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
            "description": "the batch id (a UUID)"}
OFFSET = {"type": "integer", "minimum": 0, "maximum": 2**31}
COMMON = (400, 401, 403, 503)


def build_spec() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    epoch = {"type": "integer", "minimum": 0, "maximum": 2**62}
    list_params = [
        _query("batchType", {"type": "string", "enum": [*ALL_BATCH_TYPES, ""]}, "batch type (empty: any)"),
        _query("batchState", {"type": "string", "pattern": f"^$|^({'|'.join(STATES)})(,({'|'.join(STATES)}))*$"},
               f"one state or a comma-separated set of {STATES}"),
        _query("batchUser", {"type": "string"}, "the batch's (effective) user"),
        _query("batchName", {"type": "string"}, "exact batch name"),
        _query("createTime", epoch, "created at or after (epoch ms)"),
        _query("endTime", epoch, "ended at or before (epoch ms)"),
        _query("from", OFFSET, "offset"),
        _query("size", {"type": "integer", "minimum": 1, "maximum": 10000}, "page size (default 100)"),
        _query("desc", {"type": "boolean"}, "newest first"),
    ]
    paths: dict[str, Any] = {
        "/api/v1/batches": {
            "post": {
                "tags": ["batches"], "summary": "Submit a batch",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(BatchRequest)},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["batchRequest"], "properties": {
                        "batchRequest": {"type": "string", "description": "a BatchRequest as JSON"},
                        "resourceFile": {"type": "string", "format": "binary"},
                    }}},
                }},
                "responses": {"200": _json(Batch), **_errors(*COMMON, 413, 429)},
            },
            "get": {
                "tags": ["batches"], "summary": "List batches", "parameters": list_params,
                "responses": {"200": _json(BatchList), **_errors(*COMMON)},
            },
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
    return {
        "openapi": "3.1.0",
        "info": {"title": "batchgate", "version": gateway.__version__,
                 "description": "Kyuubi-compatible batch API. Errors are {\"message\": ...}."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "security": [{"basic": []}],
    }


SPEC_KEY = web.AppKey("openapi_spec", dict)


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    spec = request.app.get(SPEC_KEY)
    if spec is None:
        spec = build_spec()
    return web.json_response(spec)


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
