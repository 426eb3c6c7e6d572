"""Datameer's job commands in the OpenAPI document (tag datameer)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.datameer.models import (
    HistoryEntry,
    JobDetails,
    JobStatusAnswer,
    PlanAnswer,
    RunningJob,
    SequentialTrigger,
    TriggerAnswer,
)

TAG = ["datameer"]
REF = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
       "description": "the job: its file id (a number), its UUID, or its path (/name or /project/name)"}
EXECUTION = {"name": "execution", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}, "description": "a job execution id"}
FAILURE = {"type": "object", "required": ["status", "reason"],
           "properties": {"status": {"const": "failure"}, "reason": {"type": "string"}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad input", 401: "no or bad credentials", 403: "not accessible", 404: "no such job or execution",
            409: "the job's state does not allow it", 503: "database unavailable"}
    return {str(c): _json(FAILURE, text[c]) for c in (400, 401, 403, 503, *codes)}


def datameer_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    for model in (JobStatusAnswer, TriggerAnswer, RunningJob, HistoryEntry, JobDetails, PlanAnswer,
                  SequentialTrigger):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    never = {"type": "object", "required": ["status", "job-status"],
             "properties": {"status": {"const": "success"}, "job-status": {"const": "_NONE"}}}
    page = [{"name": "start", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0, "maximum": 2**31}, "description": "executions to skip"},
            {"name": "length", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 10000}, "description": "page size (10)"}]
    return {
        "/api/job-execution/{ref}/status": {"get": {
            "tags": TAG, "summary": "The job's latest execution and its status (_NONE: never ran)",
            "parameters": [REF], "responses": {"200": _json({"anyOf": [_ref(JobStatusAnswer), never]}),
                                               **_errors(404)}}},
        "/api/job-execution/{ref}/trigger": {"post": {
            "tags": TAG, "summary": "Run the job", "parameters": [REF],
            "responses": {"200": _json(_ref(TriggerAnswer)), **_errors(404)}}},
        "/api/job-execution/{ref}/stop": {"post": {
            "tags": TAG, "summary": "Cancel the job's executions under way (no answer when it worked)",
            "parameters": [REF], "responses": {"200": {"description": "stopped (empty body)"}, **_errors(404, 409)}}},
        "/api/job-execution/list-running": {"get": {
            "tags": TAG, "summary": "Executions under way",
            "responses": {"200": _json({"type": "array", "items": _ref(RunningJob)}), **_errors()}}},
        "/api/job-execution/sequential-trigger": {"post": {
            "tags": TAG, "summary": "Run jobs one after the other; the answer is the execution plan",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(SequentialTrigger)}}},
            "responses": {"200": _json(_ref(PlanAnswer)), **_errors(404)}}},
        "/rest/job-configuration/job-history/{ref}": {"get": {
            "tags": TAG, "summary": "A job's executions, newest first", "parameters": [REF, *page],
            "responses": {"200": _json({"type": "array", "items": _ref(HistoryEntry)}), **_errors(404)}}},
        "/rest/job-execution/job-details/{execution}": {"get": {
            "tags": TAG, "summary": "An execution: status, times, node counts and counters", "parameters": [EXECUTION],
            "responses": {"200": _json(_ref(JobDetails)), **_errors(404)}}},
        "/rest/data/{ref}": {"delete": {
            "tags": TAG, "summary": "Delete Job: the job and its executions' records",
            "parameters": [REF],
            "responses": {"200": _json({"type": "object", "properties": {"status": {"type": "boolean"}}}),
                          **_errors(404, 409)}}},
    }
