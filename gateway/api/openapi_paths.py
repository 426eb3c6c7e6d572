"""The OpenAPI paths of jobs and runs, projects, sessions, schedules and SLAs, the Livy dialect and
operations (/readyz, /metrics); gateway/api/openapi.py puts them together."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.api.openapi_parts import (
    COMMON,
    OFFSET,
    _errors,
    _json,
    _query,
    _ref,
)
from gateway.contract.batches import CloseBatchResponse, LocalLog
from gateway.contract.jobs import Job, JobList, JobLog, JobSpec, RetryRequest, Run, RunList, TriggerRequest
from gateway.contract.projects import ArtifactList, Project, ProjectList, ProjectLog, ProjectSpec

JOB_MODELS: tuple[type[BaseModel], ...] = (Job, JobList, JobLog, JobSpec, Run, RunList, TriggerRequest, RetryRequest)
NAME = {"name": "name", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}, "description": "the job name"}
RUN_ID = {"name": "runId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
          "description": "the run id"}


def job_paths() -> dict[str, Any]:
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


def project_paths() -> dict[str, Any]:
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


def operations_paths(schemas: dict[str, Any]) -> dict[str, Any]:
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


def livy_paths(schemas: dict[str, Any]) -> dict[str, Any]:
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


def session_paths(schemas: dict[str, Any]) -> dict[str, Any]:
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


def schedule_paths(schemas: dict[str, Any]) -> dict[str, Any]:
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
