"""FakeKubernetesApi: a fake of the few Kubernetes API calls around a Spark driver pod, served by a real
aiohttp server on loopback, with the documented JSON shapes (Pod, PodList, Status):

- POST   /api/v1/namespaces/{ns}/pods                       create a pod (what spark-submit does)
- GET    /api/v1/namespaces/{ns}/pods?labelSelector=a=b,c=d  -> PodList
- GET    /api/v1/namespaces/{ns}/pods/{name}                 -> Pod, or a 404 Status
- GET    /api/v1/namespaces/{ns}/pods/{name}/log             -> text
- DELETE /api/v1/namespaces/{ns}/pods/{name}                 -> the Pod, or a 404 Status

Every call needs `Authorization: Bearer <token>` when the fake has a token (401 Status otherwise).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


class FakeKubernetesApi:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.requests: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/api/v1/namespaces/{ns}/pods", self._create)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._list)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._get)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self._log)
        app.router.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self._delete)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    # --- what a test does to the "cluster" ------------------------------------------------------

    def add_pod(self, namespace: str, name: str, labels: dict[str, str], phase: str = "Pending") -> dict[str, Any]:
        pod = {
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "uid": f"uid-{len(self.pods)}"},
            "spec": {"containers": [{"name": "spark-kubernetes-driver"}]},
            "status": {"phase": phase, "containerStatuses": []},
        }
        self.pods[(namespace, name)] = pod
        return pod

    def set_phase(self, namespace: str, name: str, phase: str, *, exit_code: int | None = None,
                  reason: str | None = None, message: str | None = None) -> None:
        status = self.pods[(namespace, name)]["status"]
        status["phase"] = phase
        state: dict[str, Any] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        if exit_code is not None:
            state = {"terminated": {"exitCode": exit_code, "reason": reason or "Error", "message": message}}
        status["containerStatuses"] = [{"name": "spark-kubernetes-driver", "state": state}]

    def pod_by_label(self, key: str, value: str) -> dict[str, Any] | None:
        for pod in self.pods.values():
            if pod["metadata"]["labels"].get(key) == value:
                return pod
        return None

    # --- the API --------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        ns, meta = request.match_info["ns"], body.get("metadata", {})
        if (ns, meta.get("name")) in self.pods:
            return _status(409, "AlreadyExists", f'pods "{meta.get("name")}" already exists')
        return web.json_response(self.add_pod(ns, meta["name"], meta.get("labels", {})), status=201)

    async def _list(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        wanted = dict(part.split("=", 1) for part in request.query.get("labelSelector", "").split(",") if part)
        items = [p for (pns, _), p in self.pods.items()
                 if pns == ns and all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                  "items": items})

    async def _get(self, request: web.Request) -> web.Response:
        pod = self.pods.get((request.match_info["ns"], request.match_info["name"]))
        if pod is None:
            return _status(404, "NotFound", f'pods "{request.match_info["name"]}" not found')
        return web.json_response(pod)

    async def _log(self, request: web.Request) -> web.Response:
        if (request.match_info["ns"], request.match_info["name"]) not in self.pods:
            return _status(404, "NotFound", f'pods "{request.match_info["name"]}" not found')
        return web.Response(text="driver log\n")

    async def _delete(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        pod = self.pods.pop(key, None)
        if pod is None:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        self.deleted.append(key[1])
        return web.json_response(pod)
