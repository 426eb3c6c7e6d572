"""Cluster APIs that know a Spark application's state and can kill it.

- standalone: the master's JSON (`http://master-ui/json/`) and its REST submission server
  (`/v1/submissions/status|kill/<driverId>`) for cluster deploy mode;
- YARN: the ResourceManager REST API (`/ws/v1/cluster/apps?applicationTags=`, `.../apps/{id}/state`);
- Kubernetes: the driver pod, found by the label the gateway put on it.

Every call goes through aiohttp with a timeout and raises StatusUnavailable when the API cannot answer.
"""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from engines.spark_state import AppIds
from engines.spark_submit import K8S_LABEL, Master, yarn_tag
from engines.yarn import ContainerLog, ResourceManager, RmUnavailable, YarnApp

HTTP_TIMEOUT = 5.0


class StatusUnavailable(Exception):
    """The cluster API could not be asked, or gave an answer that makes no sense."""


@dataclass(frozen=True)
class ClusterStatus:
    """One answer from a cluster API. `ids` are facts worth keeping in the batch's handle."""

    found: bool
    state: str | None = None  # an appState: PENDING, RUNNING, FINISHED, FAILED, KILLED, UNKNOWN
    terminal: bool = False
    app_id: str | None = None
    app_url: str | None = None
    diagnostic: str | None = None
    ids: dict[str, str] = field(default_factory=dict)
    ui_url: str | None = None  # where the running driver's Spark UI is reachable (YARN: the RM's proxy)


NOT_FOUND = ClusterStatus(found=False)


class ClusterApi(Protocol):
    """What the Spark run asks a cluster, about the application `ids` name."""

    name: str

    async def status(self, session: aiohttp.ClientSession, ids: AppIds) -> ClusterStatus: ...

    async def kill(self, session: aiohttp.ClientSession, ids: AppIds) -> str: ...


async def _request(
    session: aiohttp.ClientSession, method: str, url: str, *, timeout: float = HTTP_TIMEOUT, **kwargs: Any
) -> tuple[int, Any]:
    """(status, parsed JSON body or None); StatusUnavailable if the server cannot be reached."""
    try:
        async with session.request(
            method, url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False, **kwargs
        ) as resp:
            text = await resp.text(errors="replace")
            try:
                body: Any = json.loads(text) if text.strip() else None
            except ValueError:
                body = None
            return resp.status, body
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise StatusUnavailable(f"{method} {url}: {type(exc).__name__} {exc}".rstrip()) from None


async def _text(session: aiohttp.ClientSession, url: str, *, timeout: float = HTTP_TIMEOUT) -> str:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return await resp.text(errors="replace")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise StatusUnavailable(f"GET {url}: {type(exc).__name__} {exc}".rstrip()) from None


def _expect_dict(body: Any, url: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise StatusUnavailable(f"{url}: not a JSON object")
    return body


# --- standalone ---------------------------------------------------------------------------------

_CSRF_TOKEN = re.compile(r'name="csrfToken" value="([^"]+)"')
_DRIVER_STATES = {
    "SUBMITTED": ("PENDING", False), "RELAUNCHING": ("PENDING", False), "RUNNING": ("RUNNING", False),
    "UNKNOWN": ("UNKNOWN", False), "FINISHED": ("FINISHED", True), "FAILED": ("FAILED", True),
    "ERROR": ("FAILED", True), "KILLED": ("KILLED", True),
}
_APP_STATES = {
    "WAITING": ("PENDING", False), "RUNNING": ("RUNNING", False), "UNKNOWN": ("UNKNOWN", False),
    "FINISHED": ("FINISHED", True), "FAILED": ("FAILED", True), "KILLED": ("KILLED", True),
}


class StandaloneApi:
    """A standalone master: its web UI's JSON, and its REST submission server for cluster mode."""

    name = "standalone master"

    def __init__(self, master: Master, *, web_urls: list[str], rest_urls: list[str], cluster: bool) -> None:
        self.master = master
        self.web_urls = [u.rstrip("/") for u in web_urls]
        self.rest_urls = [u.rstrip("/") for u in rest_urls]
        self.cluster = cluster
        self._worker_ui: dict[str, str] = {}

    async def master_json(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        errors: list[str] = []
        for web in self.web_urls:
            try:
                status, body = await _request(session, "GET", f"{web}/json/")
            except StatusUnavailable as exc:
                errors.append(str(exc))
                continue
            if status == 200 and isinstance(body, dict):
                return body
            errors.append(f"GET {web}/json/: HTTP {status}")
        raise StatusUnavailable("; ".join(errors) or "no master web UI configured")

    async def _rest(self, session: aiohttp.ClientSession, method: str, path: str) -> dict[str, Any]:
        errors: list[str] = []
        for rest in self.rest_urls:
            try:
                status, body = await _request(session, method, f"{rest}{path}")
            except StatusUnavailable as exc:
                errors.append(str(exc))
                continue
            if isinstance(body, dict) and body.get("action") not in (None, "ErrorResponse"):
                return body
            errors.append(f"{method} {rest}{path}: HTTP {status} {body.get('message', '') if body else ''}")
        raise StatusUnavailable("; ".join(errors) or "no REST submission server")

    async def status(self, session: aiohttp.ClientSession, ids: AppIds) -> ClusterStatus:
        if self.cluster:
            return await self._driver_status(session, ids)
        app_id = ids.app_id
        if not app_id or not str(app_id).startswith("app-"):
            return NOT_FOUND
        info = await self.master_json(session)
        for app in [*info.get("activeapps", []), *info.get("completedapps", [])]:
            if app.get("id") == app_id:
                state, terminal = _APP_STATES.get(str(app.get("state")), ("UNKNOWN", False))
                return ClusterStatus(True, state, terminal, app_id=app_id)
        return NOT_FOUND

    async def _driver_status(self, session: aiohttp.ClientSession, ids: AppIds) -> ClusterStatus:
        driver_id = ids.driver_id
        if not driver_id:
            return NOT_FOUND
        driver_state: str | None = None
        worker_id: str | None = None
        message: str | None = None
        rest_error: StatusUnavailable | None = None
        try:
            body = await self._rest(session, "GET", f"/v1/submissions/status/{quote(driver_id)}")
            if body.get("success") is False:
                return NOT_FOUND
            driver_state, worker_id = body.get("driverState"), body.get("workerId")
            message = body.get("message")
        except StatusUnavailable as exc:
            rest_error = exc
        info: dict[str, Any] | None = None
        if rest_error is not None or (worker_id and worker_id not in self._worker_ui):
            try:
                info = await self.master_json(session)
            except StatusUnavailable as exc:
                if rest_error is not None:
                    raise StatusUnavailable(f"{rest_error}; {exc}") from None
        if info is not None:
            for worker in info.get("workers", []):
                if worker.get("id") and worker.get("webuiaddress"):
                    self._worker_ui[worker["id"]] = str(worker["webuiaddress"]).rstrip("/")
            if driver_state is None:
                for driver in [*info.get("activedrivers", []), *info.get("completeddrivers", [])]:
                    if driver.get("id") == driver_id:
                        driver_state, worker_id = driver.get("state"), driver.get("worker")
                if driver_state is None:
                    return NOT_FOUND
        state, terminal = _DRIVER_STATES.get(str(driver_state), ("UNKNOWN", False))
        ui = self._worker_ui.get(worker_id or "")
        url = f"{ui}/logPage/?driverId={driver_id}&logType=stderr" if ui else None
        diagnostic = message if state == "FAILED" and message else None
        if state == "FAILED" and diagnostic is None:
            diagnostic = f"driver {driver_id} ended {driver_state}"
        return ClusterStatus(True, state, terminal, app_id=driver_id, app_url=url, diagnostic=diagnostic,
                             ids={"worker": worker_id} if worker_id else {})

    async def kill(self, session: aiohttp.ClientSession, ids: AppIds) -> str:
        driver_id = ids.driver_id
        if not self.cluster or not driver_id:
            return ""
        try:
            body = await self._rest(session, "POST", f"/v1/submissions/kill/{quote(driver_id)}")
            if body.get("success"):
                return f"kill of {driver_id} sent to the REST submission server"
            rest_error = str(body.get("message") or body)
        except StatusUnavailable as exc:
            rest_error = str(exc)
        errors = [rest_error]
        for web in self.web_urls:  # the master UI's kill link, when the REST server is off
            form = {"id": driver_id, "terminate": "true"}
            try:
                # Spark 4 UIs want the page's CSRF token with every state-changing POST.
                token = _CSRF_TOKEN.search(await _text(session, f"{web}/"))
                if token:
                    form["csrfToken"] = token.group(1)
                status, _ = await _request(session, "POST", f"{web}/driver/kill/", data=form)
            except StatusUnavailable as exc:
                errors.append(str(exc))
                continue
            if status < 400:
                return f"kill of {driver_id} sent to the master web UI"
            errors.append(f"POST {web}/driver/kill/: HTTP {status}")
        raise StatusUnavailable(f"could not kill {driver_id}: {'; '.join(errors)}")


# --- YARN ---------------------------------------------------------------------------------------


class YarnApi:
    """The ResourceManager (engines/yarn.py), asked about the application tagged with the batch id."""

    name = ResourceManager.name

    def __init__(self, rm_urls: list[str], *, batch_id: str, cluster: bool) -> None:
        self.rm = ResourceManager(rm_urls, timeout=HTTP_TIMEOUT)
        self.batch_id = batch_id
        self.cluster = cluster
        self.last: YarnApp | None = None  # the last report, for the AM container's logs at the end

    async def find(self, session: aiohttp.ClientSession, ids: AppIds) -> YarnApp | None:
        app_id = ids.app_id
        try:
            if app_id and str(app_id).startswith("application_"):
                return await self.rm.app(session, str(app_id))
            return await self.rm.tagged(session, yarn_tag(self.batch_id))
        except RmUnavailable as exc:
            raise StatusUnavailable(str(exc)) from None

    async def status(self, session: aiohttp.ClientSession, ids: AppIds) -> ClusterStatus:
        app = await self.find(session, ids)
        if app is None:
            return NOT_FOUND
        self.last = app
        state = app.app_state
        # appUrl is the RM's tracking URL: its proxy to the driver's Spark UI while the application runs,
        # and what the RM knows of it (its history) afterwards.
        ui = app.tracking_url if state == "RUNNING" else None
        ids_kept = {"amContainerLogs": app.am_container_logs} if app.am_container_logs else {}
        return ClusterStatus(True, state, app.terminal, app_id=app.app_id, app_url=app.tracking_url,
                             diagnostic=app.diagnostic, ids=ids_kept, ui_url=ui)

    async def kill(self, session: aiohttp.ClientSession, ids: AppIds) -> str:
        app_id = ids.app_id
        if not app_id or not str(app_id).startswith("application_"):
            found = await self.find(session, ids)
            if found is None:
                return ""
            app_id = found.app_id
        try:
            return await self.rm.kill(session, str(app_id))
        except RmUnavailable as exc:
            raise StatusUnavailable(str(exc)) from None

    async def am_logs(self, session: aiohttp.ClientSession) -> list[ContainerLog]:
        """The application master's log files, from the last report (empty if it had no AM yet)."""
        if self.last is None:
            return []
        try:
            return await self.rm.am_logs(session, self.last)
        except RmUnavailable as exc:
            raise StatusUnavailable(str(exc)) from None


# --- Kubernetes ---------------------------------------------------------------------------------

_POD_PHASES = {
    "Pending": ("PENDING", False), "Running": ("RUNNING", False), "Unknown": ("UNKNOWN", False),
    "Succeeded": ("FINISHED", True), "Failed": ("FAILED", True),
}
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
IN_CLUSTER_CA = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")


class K8sApi:
    """The Kubernetes API server named by the k8s:// master, asked about the batch's driver pod."""

    name = "Kubernetes API"

    def __init__(
        self, api_url: str, *, batch_id: str, namespace: str, token_file: Path | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.batch_id = batch_id
        self.namespace = namespace
        self.token_file = token_file
        self._ssl: ssl.SSLContext | None = None
        if ca_file is not None and self.api_url.startswith("https"):
            self._ssl = ssl.create_default_context(cafile=str(ca_file))

    def _headers(self) -> dict[str, str]:
        if self.token_file is None:
            return {}
        try:
            token = self.token_file.read_text().strip()  # re-read: service account tokens rotate
        except OSError as exc:
            raise StatusUnavailable(f"cannot read the Kubernetes token {self.token_file}: {exc}") from None
        return {"Authorization": f"Bearer {token}"}

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self._headers()}
        if self._ssl is not None:
            kwargs["ssl"] = self._ssl
        return kwargs

    def pod_url(self, namespace: str, pod: str) -> str:
        return f"{self.api_url}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}"

    async def status(self, session: aiohttp.ClientSession, ids: AppIds) -> ClusterStatus:
        namespace = str(ids.namespace or self.namespace)
        selector = quote(f"{K8S_LABEL}={self.batch_id},spark-role=driver")
        url = f"{self.api_url}/api/v1/namespaces/{quote(namespace)}/pods?labelSelector={selector}"
        status, body = await _request(session, "GET", url, **self._kwargs())
        if status != 200:
            message = body.get("message") if isinstance(body, dict) else None
            raise StatusUnavailable(f"GET {url}: HTTP {status} {message or ''}".rstrip())
        pods = _expect_dict(body, url).get("items") or []
        if not pods:
            return NOT_FOUND
        pod = max(pods, key=lambda p: str(p.get("metadata", {}).get("creationTimestamp", "")))
        meta, pod_status = pod.get("metadata", {}), pod.get("status", {})
        name = str(meta.get("name", ""))
        state, terminal = _POD_PHASES.get(str(pod_status.get("phase")), ("UNKNOWN", False))
        diagnostic = _pod_failure(pod_status) if state == "FAILED" else None
        return ClusterStatus(
            True, state, terminal, app_id=meta.get("labels", {}).get("spark-app-selector"),
            app_url=f"{self.pod_url(namespace, name)}/log", diagnostic=diagnostic,
            ids={"pod": name, "namespace": namespace},
        )

    async def kill(self, session: aiohttp.ClientSession, ids: AppIds) -> str:
        pod, namespace = ids.pod, str(ids.namespace or self.namespace)
        if not pod:
            found = await self.status(session, ids)
            pod = found.ids.get("pod")
            if not pod:
                return ""
        url = self.pod_url(namespace, str(pod))
        status, body = await _request(session, "DELETE", url, **self._kwargs())
        if status in (200, 202, 404):
            return f"driver pod {namespace}/{pod} deleted"
        message = body.get("message") if isinstance(body, dict) else None
        raise StatusUnavailable(f"DELETE {url}: HTTP {status} {message or ''}".rstrip())


def _pod_failure(pod_status: dict[str, Any]) -> str:
    for container in pod_status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            parts = [str(terminated.get(k)) for k in ("reason", "message") if terminated.get(k)]
            code = terminated.get("exitCode")
            return f"driver container {' '.join(parts) or 'terminated'} (exit code {code})"
    return str(pod_status.get("message") or pod_status.get("reason") or "driver pod failed")
