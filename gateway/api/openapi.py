"""The OpenAPI document, generated from the pydantic models, and an offline docs page at /docs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel

import gateway
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
from gateway.contract.jobs import Job, JobList, JobLog, JobSpec, RetryRequest, Run, RunList, TriggerRequest
from gateway.contract.projects import ArtifactList, Project, ProjectList, ProjectLog, ProjectSpec
from gateway.datameer.spec import datameer_paths
from gateway.kylin.spec import kylin_paths

routes = web.RouteTableDef()

MODELS: tuple[type[BaseModel], ...] = (
    Batch, BatchList, BatchRequest, CloseBatchResponse, ErrorBody, LocalLog, AuditList, Health,
    BatchDetails, BulkRequest, BulkResponse, DropResponse, ReassignBatchRequest, ReassignBatchResponse, Count,
    EngineList,
)
STATES = [state.value for state in BatchState]


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


JOB_MODELS: tuple[type[BaseModel], ...] = (Job, JobList, JobLog, JobSpec, Run, RunList, TriggerRequest, RetryRequest)
NAME = {"name": "name", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}, "description": "the job name"}
RUN_ID = {"name": "runId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
          "description": "the run id"}


def _job_paths() -> dict[str, Any]:
    page = [_query("from", OFFSET, "offset"),
            _query("size", {"type": "integer", "minimum": 1, "maximum": 10000}, "page")]
    run_filters = [_query("state", {"type": "string"}, "run states, comma-separated"),
                   _query("project", {"type": "string"}, "project"), *page]
    body = {"required": True, "content": {"application/json": {"schema": _ref(JobSpec)}}}
    tag = ["jobs"]

    def control(summary: str, body_model: type[BaseModel] | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {"tags": ["runs"], "summary": summary, "parameters": [RUN_ID],
                              "responses": {"200": _json(Run), **_errors(*COMMON, 404, 409)}}
        if body_model is not None:
            op["requestBody"] = {"required": False, "content": {"application/json": {"schema": _ref(body_model)}}}
        return {"post": op}

    return {
        "/api/v1/jobs": {
            "post": {"tags": tag, "summary": "Create a job", "requestBody": body,
                     "responses": {"200": _json(Job), **_errors(*COMMON, 409)}},
            "get": {"tags": tag, "summary": "List jobs", "parameters": [
                _query("owner", {"type": "string"}, "owner"), _query("project", {"type": "string"}, "project"), *page],
                "responses": {"200": _json(JobList), **_errors(*COMMON)}},
        },
        "/api/v1/jobs/{name}": {
            "get": {"tags": tag, "summary": "Read a job with its graph", "parameters": [NAME],
                    "responses": {"200": _json(Job), **_errors(*COMMON, 404)}},
            "put": {"tags": tag, "summary": "Update a job (a new version)", "parameters": [NAME], "requestBody": body,
                    "responses": {"200": _json(Job), **_errors(*COMMON, 404)}},
            "delete": {"tags": tag, "summary": "Delete a job", "parameters": [NAME],
                       "responses": {"200": _json(CloseBatchResponse), **_errors(*COMMON, 404, 409)}},
        },
        "/api/v1/jobs/{name}/log": {
            "get": {"tags": tag, "summary": "The job's own history", "parameters": [NAME, *page],
                    "responses": {"200": _json(JobLog), **_errors(*COMMON, 404)}},
        },
        "/api/v1/jobs/{name}/runs": {
            "post": {"tags": ["runs"], "summary": "Trigger a run", "parameters": [NAME],
                     "requestBody": {"required": False,
                                     "content": {"application/json": {"schema": _ref(TriggerRequest)}}},
                     "responses": {"200": _json(Run), **_errors(*COMMON, 404)}},
            "get": {"tags": ["runs"], "summary": "The job's runs, newest first", "parameters": [NAME, *run_filters],
                    "responses": {"200": _json(RunList), **_errors(*COMMON, 404)}},
        },
        "/api/v1/runs": {
            "get": {"tags": ["runs"], "summary": "Runs, newest first",
                    "parameters": [_query("job", {"type": "string"}, "job name"), *run_filters],
                    "responses": {"200": _json(RunList), **_errors(*COMMON, 404)}},
        },
        "/api/v1/runs/{runId}": {
            "get": {"tags": ["runs"], "summary": "A run; with updatedSince only the nodes changed after it",
                    "parameters": [RUN_ID, _query("updatedSince", {"type": "integer", "minimum": 0,
                                                                   "maximum": 2**62}, "epoch ms")],
                    "responses": {"200": _json(Run), **_errors(*COMMON, 404)}},
        },
        "/api/v1/runs/{runId}/events": {
            "get": {"tags": ["runs"], "summary": "Server-sent events of run and node changes until the run ends",
                    "parameters": [RUN_ID],
                    "responses": {"200": {"description": "`run` and `node` events, then `end`",
                                          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                                  **_errors(*COMMON, 404)}},
        },
        "/api/v1/runs/{runId}/cancel": control("Cancel a run"),
        "/api/v1/runs/{runId}/pause": control("Pause a run: no new nodes start"),
        "/api/v1/runs/{runId}/resume": control("Resume a paused run"),
        "/api/v1/runs/{runId}/retry": control("Retry failed and cancelled nodes and what depends on them",
                                              RetryRequest),
        "/api/v1/runs/{runId}/nodes/{nodeId}/log": {
            "get": {"tags": ["runs"], "summary": "A node's batch log by line window",
                    "parameters": [RUN_ID, {"name": "nodeId", "in": "path", "required": True,
                                            "schema": {"type": "string"}},
                                   _query("from", {"type": "integer", "minimum": 0, "maximum": 2**62}, "first line"),
                                   _query("size", {"type": "integer", "minimum": 0, "maximum": 10000}, "lines")],
                    "responses": {"200": _json(LocalLog), **_errors(*COMMON, 404)}},
        },
    }


PROJECT_MODELS: tuple[type[BaseModel], ...] = (Project, ProjectList, ProjectSpec, ArtifactList, ProjectLog)
PROJECT = {"name": "name", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}, "description": "project"}


def _project_paths() -> dict[str, Any]:
    page = [_query("from", OFFSET, "offset"),
            _query("size", {"type": "integer", "minimum": 1, "maximum": 10000}, "page")]
    body = {"required": True, "content": {"application/json": {"schema": _ref(ProjectSpec)}}}
    tag = ["projects"]
    return {
        "/api/v1/projects": {
            "post": {"tags": tag, "summary": "Create a project", "requestBody": body,
                     "responses": {"200": _json(Project), **_errors(*COMMON, 409)}},
            "get": {"tags": tag, "summary": "Projects the caller belongs to", "parameters": page,
                    "responses": {"200": _json(ProjectList), **_errors(*COMMON)}},
        },
        "/api/v1/projects/{name}": {
            "get": {"tags": tag, "summary": "A project", "parameters": [PROJECT],
                    "responses": {"200": _json(Project), **_errors(*COMMON, 404)}},
            "put": {"tags": tag, "summary": "Update description and members", "parameters": [PROJECT],
                    "requestBody": body, "responses": {"200": _json(Project), **_errors(*COMMON, 404)}},
            "delete": {"tags": tag, "summary": "Delete a project (409 while it has live work)",
                       "parameters": [PROJECT],
                       "responses": {"200": _json(CloseBatchResponse), **_errors(*COMMON, 404, 409)}},
        },
        "/api/v1/projects/{name}/artifacts": {
            "get": {"tags": tag, "summary": "Artifact versions", "parameters": [PROJECT],
                    "responses": {"200": _json(ArtifactList), **_errors(*COMMON, 404)}},
            "post": {"tags": tag, "summary": "Upload a zip as the next artifact version", "parameters": [PROJECT],
                     "requestBody": {"required": True, "content": {
                         "application/zip": {"schema": {"type": "string", "format": "binary"}},
                         "multipart/form-data": {"schema": {"type": "object", "properties": {
                             "file": {"type": "string", "format": "binary"}}}}}},
                     "responses": {"200": {"description": "the stored artifact",
                                           "content": {"application/json": {"schema": {"type": "object"}}}},
                                   **_errors(*COMMON, 404, 413)}},
        },
        "/api/v1/projects/{name}/log": {
            "get": {"tags": tag, "summary": "The project log, newest first", "parameters": [PROJECT, *page],
                    "responses": {"200": _json(ProjectLog), **_errors(*COMMON, 404)}},
        },
    }


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
    paths.update(_session_paths(schemas))
    paths.update(_operations_paths(schemas))
    paths.update(_livy_paths(schemas))
    paths.update(kylin_paths(schemas))
    paths.update(datameer_paths(schemas))
    paths.update(azkaban_paths())
    paths.update(_job_paths())
    paths.update(_project_paths())
    paths.update(_schedule_paths(schemas))
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


def _operations_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    """/readyz and /metrics (docs/operations.md)."""
    from gateway.api.health import Ready

    schemas[Ready.__name__] = Ready.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    return {
        "/readyz": {"get": {"tags": ["operations"], "security": [],
                            "summary": "Readiness: Postgres reachable, a schema this release can use, lease held",
                            "responses": {"200": _json(Ready), "503": _json(Ready, "not ready (see Retry-After)")}}},
        "/metrics": {"get": {"tags": ["operations"], "security": [], "summary": "Prometheus metrics",
                             "responses": {"200": {"description": "Prometheus text format 0.0.4",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }


def _livy_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    """The Livy batch API under /livy (gateway/livy/handlers.py, docs/livy.md). Errors are {"msg": ...}."""
    from gateway.livy.models import (
        LivyBatch,
        LivyBatchList,
        LivyBatchLog,
        LivyBatchRequest,
        LivyBatchState,
        LivyMessage,
    )

    for model in (LivyBatchRequest, LivyBatch, LivyBatchList, LivyBatchState, LivyBatchLog, LivyMessage):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    text = {400: "bad input; the message names the field", 401: "no or bad credentials", 403: "not allowed",
            404: "Session 'N' not found.", 413: "too large", 429: "rate limited (see Retry-After)",
            503: "database unavailable (see Retry-After)"}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(c): _json(LivyMessage, text[c]) for c in (400, 401, 403, 503, *codes)}

    livy_id = {"name": "batchId", "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
               "description": "the Livy batch id (an integer)"}
    signed = {"type": "integer", "minimum": -(2**62), "maximum": 2**62}
    tag = ["livy"]
    create = {"tags": tag, "summary": "Submit a batch (SPARK, or PYSPARK for a .py file)",
              "parameters": [_query("doAs", {"type": "string", "minLength": 1, "pattern": "^[^\\x00-\\x1f\\x7f]+$"},
                                    "run as this user (overrides proxyUser)")],
              "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(LivyBatchRequest)}}},
              "responses": {"201": {**_json(LivyBatch, "Created"),
                                    "headers": {"Location": {"schema": {"type": "string"}}}},
                            **errors(413, 429)}}
    listing = {"tags": tag, "summary": "List SPARK and PYSPARK batches",
               "parameters": [_query("from", OFFSET, "offset"),
                              _query("size", {"type": "integer", "minimum": 0, "maximum": 10000},
                                     "page size (default 100)")],
               "responses": {"200": _json(LivyBatchList), **errors()}}
    return {
        "/livy/batches": {"post": create, "get": listing},
        "/livy/batches/": {"post": {**create, "summary": "Same as POST /livy/batches"},
                           "get": {**listing, "summary": "Same as GET /livy/batches"}},
        "/livy/batches/{batchId}": {
            "get": {"tags": tag, "summary": "Get a batch", "parameters": [livy_id],
                    "responses": {"200": _json(LivyBatch), **errors(404)}},
            "delete": {"tags": tag, "summary": "Kill a batch: {\"msg\": \"deleted\"}", "parameters": [livy_id],
                       "responses": {"200": _json(LivyMessage), **errors(404)}},
        },
        "/livy/batches/{batchId}/state": {
            "get": {"tags": tag, "summary": "A batch's state", "parameters": [livy_id],
                    "responses": {"200": _json(LivyBatchState), **errors(404)}},
        },
        "/livy/batches/{batchId}/log": {
            "get": {"tags": tag, "summary": "A page of the batch log (tail when from is missing or negative)",
                    "parameters": [livy_id, _query("from", signed, "first line (negative or missing: the tail)"),
                                   _query("size", signed, "lines (default 100; negative: all)")],
                    "responses": {"200": _json(LivyBatchLog), **errors(404)}},
        },
    }


def _session_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    """POST /api/v1/sessions and /api/v1/sessions/current (gateway/api/sessions.py)."""
    from gateway.contract.sessions import SessionInfo, SessionRequest, SessionRevoked, SessionToken

    for model in (SessionRequest, SessionToken, SessionInfo, SessionRevoked):
        schemas[model.__name__] = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    cookie = {"Set-Cookie": {"description": "batchgate_session (HttpOnly; SameSite=Strict; Path=/)",
                             "schema": {"type": "string"}}}
    return {
        "/api/v1/sessions": {
            "post": {"tags": ["sessions"], "summary": "Log in: Basic credentials in, a session token out",
                     "security": [{"basic": []}],
                     "requestBody": {"required": False,
                                     "content": {"application/json": {"schema": _ref(SessionRequest)}}},
                     "responses": {"200": {**_json(SessionToken), "headers": cookie}, **_errors(*COMMON)}},
        },
        "/api/v1/sessions/current": {
            "get": {"tags": ["sessions"], "summary": "The session this request is authenticated with",
                    "security": [{"bearer": []}, {"cookie": []}],
                    "responses": {"200": _json(SessionInfo), **_errors(400, 401, 503)}},
            "delete": {"tags": ["sessions"], "summary": "Log out: revoke this session (others go on)",
                       "security": [{"bearer": []}, {"cookie": []}],
                       "responses": {"200": _json(SessionRevoked), **_errors(400, 401, 403, 503)}},
        },
    }


def _schedule_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    """/api/v1/schedules and /api/v1/slas (gateway/api/schedules.py, gateway/api/slas.py, docs/schedules.md)."""
    from gateway.contract.schedules import (
        BreachList,
        Schedule,
        ScheduleList,
        ScheduleSpec,
        Sla,
        SlaList,
        SlaSpec,
        TickList,
    )

    for model in (ScheduleSpec, Schedule, ScheduleList, TickList, SlaSpec, Sla, SlaList, BreachList):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    page = [_query("from", OFFSET, "offset"),
            _query("size", {"type": "integer", "minimum": 1, "maximum": 10000}, "page")]
    sid = {"name": "scheduleId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
           "description": "the schedule id"}
    slaid = {"name": "slaId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
             "description": "the SLA id"}
    spec = {"required": True, "content": {"application/json": {"schema": _ref(ScheduleSpec)}}}
    tag, sla_tag = ["schedules"], ["slas"]
    return {
        "/api/v1/schedules": {
            "post": {"tags": tag, "summary": "Schedule a job: cron or every, in a time zone (SCHEDULE on the job)",
                     "requestBody": spec, "responses": {"200": _json(Schedule), **_errors(*COMMON, 404)}},
            "get": {"tags": tag, "summary": "Schedules of the jobs the caller may read",
                    "parameters": [_query("job", {"type": "string"}, "job name"), *page],
                    "responses": {"200": _json(ScheduleList), **_errors(*COMMON, 404)}},
        },
        "/api/v1/schedules/{scheduleId}": {
            "get": {"tags": tag, "summary": "A schedule with nextFireTimes and lastFire", "parameters": [sid],
                    "responses": {"200": _json(Schedule), **_errors(*COMMON, 404)}},
            "put": {"tags": tag, "summary": "Replace a schedule's settings (its runs then run as the caller)",
                    "parameters": [sid], "requestBody": spec,
                    "responses": {"200": _json(Schedule), **_errors(*COMMON, 404)}},
            "delete": {"tags": tag, "summary": "Delete a schedule", "parameters": [sid],
                       "responses": {"200": _json(CloseBatchResponse), **_errors(*COMMON, 404)}},
        },
        "/api/v1/schedules/{scheduleId}/ticks": {
            "get": {"tags": tag, "summary": "A schedule's ticks, newest first: fired, skipped (why), queued, failed",
                    "parameters": [sid, *page], "responses": {"200": _json(TickList), **_errors(*COMMON, 404)}},
        },
        "/api/v1/slas": {
            "post": {"tags": sla_tag, "summary": "An SLA on a job, a node of it, or a schedule",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(SlaSpec)}}},
                     "responses": {"200": _json(Sla), **_errors(*COMMON, 404)}},
            "get": {"tags": sla_tag, "summary": "SLAs the caller may read",
                    "parameters": [_query("job", {"type": "string"}, "job name"),
                                   _query("schedule", {"type": "string", "format": "uuid"}, "schedule id"),
                                   _query("batch", {"type": "string", "format": "uuid"}, "batch id (conf SLAs)"),
                                   *page],
                    "responses": {"200": _json(SlaList), **_errors(*COMMON, 404)}},
        },
        "/api/v1/slas/{slaId}": {
            "get": {"tags": sla_tag, "summary": "An SLA", "parameters": [slaid],
                    "responses": {"200": _json(Sla), **_errors(*COMMON, 404)}},
            "delete": {"tags": sla_tag, "summary": "Delete an SLA with its deadlines and breaches",
                       "parameters": [slaid], "responses": {"200": _json(CloseBatchResponse), **_errors(*COMMON, 404)}},
        },
        "/api/v1/slas/{slaId}/breaches": {
            "get": {"tags": sla_tag, "summary": "An SLA's breaches, newest first, each recorded once",
                    "parameters": [slaid, *page], "responses": {"200": _json(BreachList), **_errors(*COMMON, 404)}},
        },
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
