"""The Kylin job API in the OpenAPI document (tag kylin): paths, parameters and Kylin's envelope."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.kylin.models import JobStatusRequest, KylinJob, StepOutput, V2JobList, V5JobList

TAG = ["kylin"]
JOB_ID = {"name": "jobId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
          "description": "a batch id or a run id"}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _envelope(data: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    schema = {"type": "object", "required": ["code", "data", "msg"],
              "properties": {"code": {"type": "string"}, "data": data, "msg": {"type": "string"}}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def kylin_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    for model in (KylinJob, V2JobList, V5JobList, StepOutput, JobStatusRequest):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    failure = {"type": ["object", "null"]}  # Kylin's error envelope: code 999, the message in msg
    errors = {str(c): _envelope(failure, text) for c, text in (
        (400, "bad input; msg names the parameter"), (401, "no or bad credentials"), (403, "not allowed"),
        (404, "no such job"), (409, "the job's state does not allow it"), (503, "database unavailable"))}
    job = _envelope(_ref(KylinJob))
    time_filter = {"type": "integer", "minimum": 0, "maximum": 4}
    page = {"type": "integer", "minimum": 0, "maximum": 2**31}
    size = {"type": "integer", "minimum": 1, "maximum": 10000}
    listing = {
        "tags": TAG,
        "summary": "List jobs: Kylin 5's parameters, or v2's with Accept: application/vnd.apache.kylin-v2+json",
        "parameters": [
            _query("time_filter", time_filter, "0 day, 1 week, 2 month, 3 year, 4 all (Kylin 5; v2: timeFilter)"),
            _query("timeFilter", time_filter, "v2: 0 day, 1 week, 2 month, 3 year, 4 all"),
            _query("project", {"type": "string"}, "project name"),
            _query("projectName", {"type": "string"}, "v2: project name"),
            _query("statuses", {"type": "string"}, "PENDING,RUNNING,FINISHED,ERROR,DISCARDED,STOPPED"),
            _query("status", {"type": "string", "pattern": "^[0-9,]*$"},
                   "v2: status codes NEW 0, PENDING 1, RUNNING 2, FINISHED 4, ERROR 8, DISCARDED 16, STOPPED 32"),
            _query("page_offset", page, "page number"), _query("pageOffset", page, "v2: page number"),
            _query("page_size", size, "jobs per page (10)"), _query("pageSize", size, "v2: jobs per page"),
            _query("sort_by", {"type": "string", "enum": ["last_modified", "create_time", "job_name",
                                                          "target_subject", "total_duration"]}, "sort field"),
            _query("sortby", {"type": "string", "enum": ["last_modify", "last_modified", "create_time",
                                                         "job_name", "cube_name", "duration"]}, "v2: sort field"),
            _query("reverse", {"type": "boolean"}, "newest first (true)"),
            _query("key", {"type": "string"}, "a job id prefix or part of its name"),
            _query("jobName", {"type": "string"}, "v2: the job's (cube's) name"),
        ],
        "responses": {"200": _envelope({"anyOf": [_ref(V2JobList), _ref(V5JobList)]}),
                      **{k: v for k, v in errors.items() if k in ("400", "401", "403", "503")}},
    }

    def one(summary: str, *codes: str, params: list[dict[str, Any]] | None = None,
            ok: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"tags": TAG, "summary": summary, "parameters": [JOB_ID, *(params or [])],
                "responses": {"200": ok or job, **{k: v for k, v in errors.items()
                                                   if k in ("400", "401", "403", "404", "503", *codes)}}}

    step = {"name": "stepId", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "the job id, a dash and the step's two-digit sequence number"}
    return {
        "/kylin/api/jobs": {"get": listing},
        "/kylin/api/jobs/status": {
            "put": {"tags": TAG, "summary": "Kylin 5: RESUME, DISCARD, PAUSE or RESTART jobs by id or project",
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref(JobStatusRequest)}}},
                    "responses": {"200": _envelope({"type": "string"}),
                                  **{k: v for k, v in errors.items() if k in ("400", "401", "403", "409", "503")}}},
        },
        "/kylin/api/jobs/{jobId}": {"get": one("A job (a batch or a run) with its steps")},
        "/kylin/api/jobs/{jobId}/resume": {"put": one("Resume a paused job; a failed one runs again", "409")},
        "/kylin/api/jobs/{jobId}/cancel": {"put": one("Discard a job (kill the batch, cancel the run)", "409")},
        "/kylin/api/jobs/{jobId}/pause": {"put": one("Pause a job", "409")},
        "/kylin/api/jobs/{jobId}/drop": {"delete": one("Drop a finished batch's record", "409")},
        "/kylin/api/jobs/{jobId}/steps/{stepId}/output": {
            "get": one("A step's output: the tail of its batch's log", params=[step], ok=_envelope(_ref(StepOutput)))},
    }
