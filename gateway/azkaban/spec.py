"""Azkaban's AJAX API in the OpenAPI document (tag azkaban). Each path takes its action in a parameter
(`action` or `ajax`), as Azkaban's own servlets do, so one operation per path and method lists them all."""

from __future__ import annotations

from typing import Any

TAG = ["azkaban"]
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
         "description": "Azkaban's failure; `session` for an unknown or expired session.id"}
SESSION = [{"name": "session.id", "in": "query", "required": False, "schema": {"type": "string"},
            "description": "the session (or the azkaban.browser.session.id cookie)"}]
ACTIONS = {
    "/": ("action", ["login"], "Log in: username and password give a session.id"),
    "/manager": ("ajax", ["upload", "fetchprojectflows", "fetchflowgraph", "fetchflowjobs", "fetchFlowExecutions",
                          "getPermissions", "fetchProjectLogs"],
                 "Projects, zips and flows (also action=create, delete=true)"),
    "/executor": ("ajax", ["executeFlow", "fetchexecflow", "fetchexecflowupdate", "cancelFlow", "pauseFlow",
                           "resumeFlow", "getRunning", "fetchExecJobLogs", "fetchExecFlowLogs"], "Executions"),
    "/schedule": ("ajax", ["scheduleCronFlow", "scheduleFlow", "fetchSchedule", "setSla", "slaInfo"],
                  "Schedules and SLAs (also action=removeSched)"),
}


def azkaban_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, (key, names, summary) in ACTIONS.items():
        parameters = [{"name": key, "in": "query", "required": False, "schema": {"type": "string", "enum": names},
                       "description": "the action; form data (x-www-form-urlencoded) may carry it instead"}]
        if path != "/":
            parameters += SESSION
        answer = {"anyOf": [{"type": "object"}, ERROR]}
        op = {"tags": TAG, "summary": summary, "security": [], "parameters": parameters,
              "responses": {"200": {"description": "the action's answer, or {\"error\": ...}",
                                    "content": {"application/json": {"schema": answer}}},
                            "503": {"description": "database unavailable",
                                    "content": {"application/json": {"schema": ERROR}}}}}
        paths[path] = {"get": op, "post": {**op, "requestBody": {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            **({"multipart/form-data": {"schema": {"type": "object"}}} if path == "/manager" else {})}}}}
    return paths
