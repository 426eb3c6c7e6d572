"""FakeYarnResourceManager: a fake of the YARN ResourceManager REST API (only what batchgate uses),
served by a real aiohttp server on loopback, for the one fault the real cluster of the tests
(tests/yarn_cluster.py, a single RM) cannot be made to show: an RM that answers 503 while it fails over
(`down`). It returns the documented JSON shapes:

- GET  /ws/v1/cluster/apps?applicationTags=t   -> {"apps": {"app": [...]}}, or {"apps": null} if none
- GET  /ws/v1/cluster/apps/{id}                -> {"app": {...}}, or 404 with a RemoteException
- PUT  /ws/v1/cluster/apps/{id}/state          -> {"state": "KILLED"} for body {"state": "KILLED"}
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiohttp import web

CLUSTER_TIMESTAMP = 1700000000000
TERMINAL = ("FINISHED", "FAILED", "KILLED")


class FakeYarnResourceManager:
    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.kills: list[str] = []
        self.requests: list[str] = []
        self.down = False  # answer 503 to everything, as an RM that is failing over
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/ws/v1/cluster/apps", self._list)
        app.router.add_get("/ws/v1/cluster/apps/{id}", self._get)
        app.router.add_put("/ws/v1/cluster/apps/{id}/state", self._put_state)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what a test does to the "cluster" ------------------------------------------------------

    def add_app(self, *, name: str = "app", tags: str = "", user: str = "alice", state: str = "ACCEPTED") -> str:
        app_id = f"application_{CLUSTER_TIMESTAMP}_{next(self._ids):04d}"
        now = int(time.time() * 1000)
        self.apps[app_id] = {
            "id": app_id, "user": user, "name": name, "queue": "default", "state": state,
            "finalStatus": "UNDEFINED", "progress": 0.0, "trackingUI": "UNASSIGNED", "trackingUrl": None,
            "diagnostics": "", "clusterId": CLUSTER_TIMESTAMP, "applicationType": "SPARK",
            "applicationTags": tags.lower(), "startedTime": now, "finishedTime": 0, "elapsedTime": 0,
            "amContainerLogs": None, "amHostHttpAddress": None,
        }
        return app_id

    def set_state(self, app_id: str, state: str, final_status: str = "UNDEFINED", diagnostics: str = "") -> None:
        app = self.apps[app_id]
        app["state"], app["finalStatus"], app["diagnostics"] = state, final_status, diagnostics
        if state == "RUNNING":
            app["trackingUI"] = "ApplicationMaster"
            app["trackingUrl"] = f"{self.url}/proxy/{app_id}/"
            app["amContainerLogs"] = f"http://nm1:8042/node/containerlogs/container_{app_id[12:]}_01_000001/alice"
            app["amHostHttpAddress"] = "nm1:8042"
        if state in TERMINAL:
            app["finishedTime"] = int(time.time() * 1000)
            app["trackingUI"] = "History"

    # --- the REST API ---------------------------------------------------------------------------

    def _unavailable(self) -> web.Response | None:
        if self.down:
            return web.json_response({"RemoteException": {"message": "RM is down"}}, status=503)
        return None

    async def _list(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET {request.path_qs}")
        if (down := self._unavailable()) is not None:
            return down
        wanted = {t.strip().lower() for t in request.query.get("applicationTags", "").split(",") if t.strip()}
        apps = [a for a in self.apps.values()
                if not wanted or wanted & set(a["applicationTags"].split(","))]
        return web.json_response({"apps": {"app": apps} if apps else None})

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET {request.path_qs}")
        if (down := self._unavailable()) is not None:
            return down
        app = self.apps.get(request.match_info["id"])
        if app is None:
            return web.json_response({"RemoteException": {
                "exception": "NotFoundException", "message": f"app with id: {request.match_info['id']} not found",
                "javaClassName": "org.apache.hadoop.yarn.webapp.NotFoundException"}}, status=404)
        return web.json_response({"app": app})

    async def _put_state(self, request: web.Request) -> web.Response:
        app_id = request.match_info["id"]
        self.requests.append(f"PUT {request.path_qs}")
        if (down := self._unavailable()) is not None:
            return down
        body = await request.json()
        app = self.apps.get(app_id)
        if app is None:
            return web.json_response({"RemoteException": {"message": "not found"}}, status=404)
        if body != {"state": "KILLED"}:
            return web.json_response({"RemoteException": {"message": f"bad body {body}"}}, status=400)
        self.kills.append(app_id)
        if app["state"] not in TERMINAL:
            self.set_state(app_id, "KILLED", "KILLED", f"Application {app_id} was killed by user alice")
        return web.json_response({"state": app["state"]})
