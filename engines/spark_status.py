"""Cluster APIs that know a Spark application's state and can kill it.

- standalone: the master's JSON (`http://master-ui/json/`) and its REST submission server
  (`/v1/submissions/status|kill/<driverId>`) for cluster deploy mode;
- YARN: the ResourceManager REST API (`/ws/v1/cluster/apps?applicationTags=`, `.../apps/{id}/state`);
- Kubernetes: the driver pod, found by the label the gateway put on it.

Every call goes through aiohttp with a timeout and raises StatusUnavailable when the API cannot answer.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from engines.spark_submit import K8S_LABEL, Master, yarn_tag

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
    """What the Spark run asks a cluster. `ids` is the `spark` part of the batch's handle."""

    name: str

    async def status(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> ClusterStatus: ...

    async def kill(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> str: ...


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

    async def status(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> ClusterStatus:
        if self.cluster:
            return await self._driver_status(session, ids)
        app_id = ids.get("appId")
        if not app_id or not str(app_id).startswith("app-"):
            return NOT_FOUND
        info = await self.master_json(session)
        for app in [*info.get("activeapps", []), *info.get("completedapps", [])]:
            if app.get("id") == app_id:
                state, terminal = _APP_STATES.get(str(app.get("state")), ("UNKNOWN", False))
                return ClusterStatus(True, state, terminal, app_id=app_id)
        return NOT_FOUND

    async def _driver_status(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> ClusterStatus:
        driver_id = ids.get("driverId")
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

    async def kill(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> str:
        driver_id = ids.get("driverId")
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

_YARN_FINAL = {"SUCCEEDED": "FINISHED", "FAILED": "FAILED", "KILLED": "KILLED", "UNDEFINED": "FINISHED"}


class YarnApi:
    """The ResourceManager REST API (one URL, or several for RM HA: the first that answers wins)."""

    name = "YARN ResourceManager"

    def __init__(self, rm_urls: list[str], *, batch_id: str, cluster: bool) -> None:
        self.rm_urls = [u.rstrip("/") for u in rm_urls]
        self.batch_id = batch_id
        self.cluster = cluster

    async def _get(self, session: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
        errors: list[str] = []
        for rm in self.rm_urls:
            try:
                status, body = await _request(session, "GET", f"{rm}{path}")
            except StatusUnavailable as exc:
                errors.append(str(exc))
                continue
            if status in (200, 404):
                return status, body
            errors.append(f"GET {rm}{path}: HTTP {status}")  # a standby RM redirects; try the next
        raise StatusUnavailable("; ".join(errors))

    async def status(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> ClusterStatus:
        app_id = ids.get("appId")
        if app_id and str(app_id).startswith("application_"):
            status, body = await self._get(session, f"/ws/v1/cluster/apps/{quote(app_id)}")
            if status == 404:
                return NOT_FOUND
            app = _expect_dict(_expect_dict(body, "RM").get("app"), "RM app")
        else:
            tag = yarn_tag(self.batch_id)
            _, body = await self._get(session, f"/ws/v1/cluster/apps?applicationTags={quote(tag)}")
            apps = (_expect_dict(body, "RM").get("apps") or {}).get("app") or []
            apps = [a for a in apps if tag in str(a.get("applicationTags", "")).lower().split(",")]
            if not apps:
                return NOT_FOUND
            app = max(apps, key=lambda a: int(a.get("startedTime") or 0))
        return self._status(app)

    def _status(self, app: dict[str, Any]) -> ClusterStatus:
        yarn_state = str(app.get("state", ""))
        final = str(app.get("finalStatus", "UNDEFINED"))
        terminal = yarn_state in ("FINISHED", "FAILED", "KILLED")
        if yarn_state in ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED"):
            state = "PENDING"
        elif yarn_state == "RUNNING":
            state = "RUNNING"
        elif yarn_state == "FINISHED":
            state = _YARN_FINAL.get(final, "FAILED")
        elif yarn_state in ("FAILED", "KILLED"):
            state = yarn_state
        else:
            state = "UNKNOWN"
        url = (app.get("amContainerLogs") if self.cluster else None) or app.get("trackingUrl")
        diagnostics = str(app.get("diagnostics") or "").strip()
        diagnostic = diagnostics[:500] if state in ("FAILED", "KILLED") and diagnostics else None
        # While the application runs, its tracking URL is the RM's proxy to the driver's Spark UI.
        tracking = str(app.get("trackingUrl") or "")
        ui = tracking if state == "RUNNING" and tracking.startswith(("http://", "https://")) else None
        return ClusterStatus(True, state, terminal, app_id=app.get("id"), app_url=url or None,
                             diagnostic=diagnostic, ui_url=ui)

    async def kill(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> str:
        app_id = ids.get("appId")
        if not app_id or not str(app_id).startswith("application_"):
            found = await self.status(session, ids)
            app_id = found.app_id
            if not app_id:
                return ""
        errors: list[str] = []
        for rm in self.rm_urls:
            url = f"{rm}/ws/v1/cluster/apps/{quote(app_id)}/state"
            try:
                status, body = await _request(session, "PUT", url, json={"state": "KILLED"})
            except StatusUnavailable as exc:
                errors.append(str(exc))
                continue
            if status in (200, 202):
                return f"kill of {app_id} sent to the ResourceManager"
            errors.append(f"PUT {url}: HTTP {status} {body or ''}".rstrip())
        raise StatusUnavailable("; ".join(errors))


def yarn_rm_from_site(env: dict[str, str] | os._Environ[str]) -> list[str]:
    """ResourceManager web addresses from yarn-site.xml (RM HA: every rm id's), or none."""
    for var in ("YARN_CONF_DIR", "HADOOP_CONF_DIR"):
        if not env.get(var):
            continue
        try:
            root = ET.parse(Path(env[var]) / "yarn-site.xml").getroot()
        except (OSError, ET.ParseError):
            continue
        props = {p.findtext("name", ""): p.findtext("value", "") for p in root.iter("property")}
        urls = [f"http://{v.strip()}" for k, v in sorted(props.items())
                if k.startswith("yarn.resourcemanager.webapp.address") and v.strip()]
        if not urls and props.get("yarn.resourcemanager.hostname"):
            urls = [f"http://{props['yarn.resourcemanager.hostname'].strip()}:8088"]
        if urls:
            return urls
    return []


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

    async def status(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> ClusterStatus:
        namespace = str(ids.get("namespace") or self.namespace)
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

    async def kill(self, session: aiohttp.ClientSession, ids: dict[str, Any]) -> str:
        pod, namespace = ids.get("pod"), str(ids.get("namespace") or self.namespace)
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
