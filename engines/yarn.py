"""The YARN ResourceManager REST API, as every engine that runs applications on YARN uses it.

- an application by id (`/ws/v1/cluster/apps/{id}`) or by the tag the gateway gave it
  (`/ws/v1/cluster/apps?applicationTags=`), mapped to batchgate's app states;
- kill through the RM (`PUT /ws/v1/cluster/apps/{id}/state {"state": "KILLED"}`), so that the
  application dies, not only its launcher;
- the application master container's log files, from the NodeManager that ran it
  (`/ws/v1/node/containers/{id}/logs`, `/ws/v1/node/containerlogs/{id}/{file}`), which also serves
  aggregated logs once the container is gone;
- the RM's web addresses from `yarn-site.xml` (RM HA: every rm id's).

YARN has no push API: callers poll, with an interval of their own. Every call has a timeout and raises
RmUnavailable when no RM can answer. Several RM URLs (HA) are tried in order; a standby answers with a
redirect or an error and the next one is asked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from engines.base import LogLines, Note

HTTP_TIMEOUT = 5.0
DIAGNOSTIC_MAX = 500
AM_LOG_MAX_BYTES = 1 << 20  # the tail of each AM log file that is copied into the batch log
SPARK_AM_LOGS = {"stdout": AM_LOG_MAX_BYTES, "stderr": AM_LOG_MAX_BYTES}  # a driver's output, its log4j

PENDING_STATES = frozenset({"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED"})
TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "KILLED"})
# An application that ended by itself says how in its final status: FINISHED/SUCCEEDED is a success,
# FINISHED/FAILED a failed driver, FINISHED/KILLED an AM that unregistered as killed. UNDEFINED after
# FINISHED means the AM said nothing: YARN counts that as done.
_FINAL_STATUS = {"SUCCEEDED": "FINISHED", "FAILED": "FAILED", "KILLED": "KILLED", "UNDEFINED": "FINISHED"}
_CONTAINER_LOGS = re.compile(r"/node/containerlogs/(container_[0-9e_]+)/")


class RmUnavailable(Exception):
    """No ResourceManager (or NodeManager) answered, or the answer made no sense."""


@dataclass(frozen=True)
class YarnApp:
    """One application report of the RM, with its state in batchgate's terms."""

    app_id: str
    state: str  # YARN's: NEW, NEW_SAVING, SUBMITTED, ACCEPTED, RUNNING, FINISHED, FAILED, KILLED
    final_status: str  # UNDEFINED, SUCCEEDED, FAILED, KILLED
    user: str
    queue: str
    name: str
    application_type: str
    tags: tuple[str, ...]
    tracking_url: str | None
    diagnostics: str
    am_container_logs: str | None
    am_rpc_address: str | None  # host:port the AM registered (Flink's: its JobManager's REST API)
    started: int

    @classmethod
    def from_json(cls, app: Mapping[str, Any]) -> YarnApp:
        if not isinstance(app.get("id"), str):
            raise RmUnavailable(f"an application report without an id: {str(app)[:200]}")
        tags = str(app.get("applicationTags") or "")
        tracking = str(app.get("trackingUrl") or "")
        return cls(
            app_id=app["id"], state=str(app.get("state", "")), final_status=str(app.get("finalStatus") or "UNDEFINED"),
            user=str(app.get("user", "")), queue=str(app.get("queue", "")), name=str(app.get("name", "")),
            application_type=str(app.get("applicationType", "")),
            tags=tuple(t for t in tags.lower().split(",") if t),
            tracking_url=tracking if tracking.startswith(("http://", "https://")) else None,
            diagnostics=str(app.get("diagnostics") or "").strip(),
            am_container_logs=str(app.get("amContainerLogs") or "") or None,
            am_rpc_address=_host_port(app.get("amRPCAddress")),
            started=int(app.get("startedTime") or 0),
        )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def app_state(self) -> str:
        """PENDING, RUNNING, FINISHED, FAILED, KILLED, or UNKNOWN (a state this code does not know)."""
        if self.state in PENDING_STATES:
            return "PENDING"
        if self.state == "RUNNING":
            return "RUNNING"
        if self.state == "FINISHED":
            return _FINAL_STATUS.get(self.final_status, "FAILED")
        if self.state in ("FAILED", "KILLED"):
            return self.state
        return "UNKNOWN"

    @property
    def diagnostic(self) -> str | None:
        """YARN's diagnostics of an application that did not succeed."""
        if self.app_state in ("FAILED", "KILLED") and self.diagnostics:
            return self.diagnostics[:DIAGNOSTIC_MAX]
        return None

    @property
    def am_container(self) -> tuple[str, str] | None:
        """(NodeManager web address, container id) of the application master, once one was launched."""
        if not self.am_container_logs:
            return None
        parts = urlsplit(self.am_container_logs)
        match = _CONTAINER_LOGS.search(parts.path + "/")
        if not parts.netloc or match is None:
            return None
        return f"{parts.scheme}://{parts.netloc}", match.group(1)


@dataclass(frozen=True)
class ContainerLog:
    """One log file of a container: its name, its size, and its text (the last `limit` bytes of it)."""

    name: str
    size: int
    text: str
    limit: int

    @property
    def truncated(self) -> bool:
        return self.size > self.limit


async def _call(session: aiohttp.ClientSession, method: str, url: str, *, redirects: bool = False,
                timeout: float = HTTP_TIMEOUT, **kwargs: Any) -> tuple[int, str]:
    try:
        async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=timeout),
                                   allow_redirects=redirects, **kwargs) as resp:
            return resp.status, await resp.text(errors="replace")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise RmUnavailable(f"{method} {url}: {type(exc).__name__} {exc}".rstrip()) from None


def _json(text: str, url: str) -> dict[str, Any]:
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RmUnavailable(f"{url}: not a JSON object: {text[:200]!r}")
    return body


def _remote_message(text: str) -> str:
    """The message of a RemoteException body, else the body's start."""
    try:
        body = json.loads(text)
        return str(body["RemoteException"]["message"])
    except (ValueError, KeyError, TypeError):
        return text.strip()[:200]


class ResourceManager:
    """One YARN cluster's RM (several URLs for RM HA: the first that answers wins)."""

    name = "YARN ResourceManager"

    def __init__(self, urls: Sequence[str], *, timeout: float = HTTP_TIMEOUT) -> None:
        if not urls:
            raise ValueError("no ResourceManager URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout

    async def _get(self, session: aiohttp.ClientSession, path: str) -> tuple[int, str]:
        """(200 or 404, body) from the first RM that answers either."""
        errors: list[str] = []
        for rm in self.urls:
            try:
                status, text = await _call(session, "GET", f"{rm}{path}", timeout=self.timeout)
            except RmUnavailable as exc:
                errors.append(str(exc))
                continue
            if status in (200, 404):
                return status, text
            errors.append(f"GET {rm}{path}: HTTP {status}")  # a standby RM redirects; try the next
        raise RmUnavailable("; ".join(errors))

    async def app(self, session: aiohttp.ClientSession, app_id: str) -> YarnApp | None:
        """The application's report, or None if the RM does not know it (any more)."""
        path = f"/ws/v1/cluster/apps/{quote(app_id)}"
        status, text = await self._get(session, path)
        if status == 404:
            return None
        app = _json(text, path).get("app")
        if not isinstance(app, dict):
            raise RmUnavailable(f"{path}: no app in the answer")
        return YarnApp.from_json(app)

    async def tagged(self, session: aiohttp.ClientSession, tag: str) -> YarnApp | None:
        """The newest application with this tag (YARN keeps tags in lower case), or None."""
        tag = tag.lower()
        path = f"/ws/v1/cluster/apps?applicationTags={quote(tag)}"
        status, text = await self._get(session, path)
        if status == 404:
            raise RmUnavailable(f"GET {path}: HTTP 404")
        apps = (_json(text, path).get("apps") or {}).get("app") or []
        found = [YarnApp.from_json(a) for a in apps if isinstance(a, dict)]
        found = [a for a in found if tag in a.tags]
        return max(found, key=lambda a: a.started) if found else None

    async def kill(self, session: aiohttp.ClientSession, app_id: str) -> str:
        """Ask the RM to kill the application; returns what was done, for the batch log."""
        errors: list[str] = []
        for rm in self.urls:
            url = f"{rm}/ws/v1/cluster/apps/{quote(app_id)}/state"
            try:
                status, text = await _call(session, "PUT", url, json={"state": "KILLED"}, timeout=self.timeout)
            except RmUnavailable as exc:
                errors.append(str(exc))
                continue
            if status in (200, 202):
                return f"kill of {app_id} sent to the ResourceManager"
            errors.append(f"PUT {url}: HTTP {status} {_remote_message(text)}".rstrip())
        raise RmUnavailable("; ".join(errors))

    async def am_logs(self, session: aiohttp.ClientSession, app: YarnApp,
                      files: Mapping[str, int] = SPARK_AM_LOGS) -> list[ContainerLog]:
        """The application master container's log files ({name: how many bytes of its end}), from its
        NodeManager; the files it does not have are left out."""
        where = app.am_container
        if where is None:
            return []
        node, container = where
        listing_url = f"{node}/ws/v1/node/containers/{container}/logs"
        status, text = await _call(session, "GET", listing_url, redirects=True, timeout=self.timeout,
                                   headers={"Accept": "application/json"})
        if status != 200:
            raise RmUnavailable(f"GET {listing_url}: HTTP {status} {_remote_message(text)}".rstrip())
        sizes = _log_sizes(_json_any(text, listing_url))
        logs: list[ContainerLog] = []
        for name, max_bytes in files.items():
            if name not in sizes:
                continue
            url = f"{node}/ws/v1/node/containerlogs/{container}/{quote(name)}?size=-{max_bytes}"
            status, body = await _call(session, "GET", url, redirects=True, timeout=self.timeout)
            if status != 200:
                raise RmUnavailable(f"GET {url}: HTTP {status} {_remote_message(body)}".rstrip())
            logs.append(ContainerLog(name, sizes[name], _log_contents(body), max_bytes))
        return logs


def _host_port(value: Any) -> str | None:
    text = str(value or "").strip()
    host, _, port = text.rpartition(":")
    return text if host and port.isdigit() and host != "N/A" else None


def _json_any(text: str, url: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise RmUnavailable(f"{url}: not JSON: {text[:200]!r}") from None


def _log_sizes(listing: Any) -> dict[str, int]:
    """{file name: size} from a NodeManager's container log listing (one object, or a list of them when
    both local and aggregated logs exist)."""
    blocks = listing if isinstance(listing, list) else [listing]
    sizes: dict[str, int] = {}
    for block in blocks:
        info = block.get("containerLogsInfo", block) if isinstance(block, dict) else {}
        entries = info.get("containerLogInfo") or [] if isinstance(info, dict) else []
        if isinstance(entries, dict):
            entries = [entries]
        for entry in entries:
            if isinstance(entry, dict) and entry.get("fileName"):
                try:
                    sizes[str(entry["fileName"])] = int(entry.get("fileSize") or 0)
                except ValueError:
                    sizes[str(entry["fileName"])] = 0
    return sizes


def _log_contents(body: str) -> str:
    """A NodeManager log file answer without its header (Container:, LogType:, LogContents:) and footer."""
    start = body.find("LogContents:\n")
    if start >= 0:
        body = body[start + len("LogContents:\n"):]
    end = body.rfind("\nEnd of LogType:")
    if end >= 0:
        body = body[:end]
    return body


def rm_urls_from_site(env: Mapping[str, str]) -> list[str]:
    """ResourceManager web addresses from yarn-site.xml in YARN_CONF_DIR / HADOOP_CONF_DIR, or none."""
    for var in ("YARN_CONF_DIR", "HADOOP_CONF_DIR"):
        if not env.get(var):
            continue
        try:
            root = ET.parse(Path(env[var]) / "yarn-site.xml").getroot()
        except (OSError, ET.ParseError):
            continue
        props = {p.findtext("name", ""): p.findtext("value", "") for p in root.iter("property")}
        https = props.get("yarn.http.policy", "").strip() == "HTTPS_ONLY"
        key, scheme = ("yarn.resourcemanager.webapp.https.address", "https") if https else \
            ("yarn.resourcemanager.webapp.address", "http")
        urls = [f"{scheme}://{v.strip()}" for k, v in sorted(props.items())
                if (k == key or k.startswith(key + ".")) and v.strip()]
        if not urls:  # the default port on the RM's host (with RM HA, on each rm id's host)
            port = 8090 if https else 8088
            ids = [i.strip() for i in props.get("yarn.resourcemanager.ha.rm-ids", "").split(",") if i.strip()]
            hosts = [props.get(f"yarn.resourcemanager.hostname.{i}", "").strip() for i in ids] or \
                [props.get("yarn.resourcemanager.hostname", "").strip()]
            urls = [f"{scheme}://{host}:{port}" for host in hosts if host]
        if urls:
            return urls
    return []


def rm_urls_from_environment() -> list[str]:
    return rm_urls_from_site(os.environ)


async def am_log_events(rm: ResourceManager, session: aiohttp.ClientSession, app: YarnApp, *,
                        files: Mapping[str, int] = SPARK_AM_LOGS, timeout: float = 3 * HTTP_TIMEOUT,
                        ) -> list[Note | LogLines]:
    """The application master's log files as batch log events: a note naming each file, then its lines.
    A NodeManager that cannot be asked costs a note, never the batch's end."""
    if app.am_container is None:
        return []
    try:
        logs = await asyncio.wait_for(rm.am_logs(session, app, files), timeout)
    except (RmUnavailable, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {timeout:.0f}s"
        return [Note(f"the application master's log could not be read ({app.am_container_logs}): {reason}")]
    events: list[Note | LogLines] = []
    _, container = app.am_container
    for log in logs:
        part = f", its last {log.limit} bytes" if log.truncated else ""
        events.append(Note(f"application master log {container}/{log.name} ({log.size} bytes{part}):"))
        if log.text:
            events.append(LogLines(log.text.splitlines()))
    return events
