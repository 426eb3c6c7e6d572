"""Flink on YARN: what the ResourceManager (engines/yarn.py) adds to a Flink batch.

- **yarn-application**: the YARN application is the batch's own Flink application cluster. appId is the
  YARN application id (the JobID stays in batchInfo.flink.jobIds) and appUrl the RM's tracking URL. The
  job's state comes from the JobManager's REST API while it answers; the RM tells when the application
  itself ended (a JobManager that died, a kill from outside), with YARN's diagnostics. A kill goes to the
  RM. The JobManager's container log joins the batch log at the end. After a restart the application is
  found by its tag (`batchgate-<batch id>`), and the JobManager's REST address by the AM address the RM
  reports (`amRPCAddress`: Flink registers its REST endpoint there).
- **yarn-session**: a Flink session cluster running as a YARN application, named by the batch's
  `yarn.application.id`. Its REST address comes from the RM at submit; from then on the batch is a job
  on a session cluster, as on the remote target (appId the JobID, kill cancels the job, never the
  session).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping

import aiohttp

from engines.base import LogLines, Note
from engines.yarn import AM_LOG_MAX_BYTES, ResourceManager, RmUnavailable, YarnApp, am_log_events

YARN_SESSION = "yarn-session"
CONF_APPLICATION_ID = "yarn.application.id"
APPLICATION_ID = re.compile(r"application_\d+_\d+")
# The JobManager's files: the program's own output (main() runs in the JobManager), and the tail of its log.
JOBMANAGER_LOGS: Mapping[str, int] = {
    "jobmanager.out": AM_LOG_MAX_BYTES, "jobmanager.err": AM_LOG_MAX_BYTES, "jobmanager.log": 256 << 10,
}
END_WAIT = 30.0  # after the JobManager was told to shut down, how long YARN may take to record the end
END_POLL = 0.5


class FlinkYarn:
    """The ResourceManager, as one Flink batch asks it (with an HTTP session of its own)."""

    def __init__(self, rm: ResourceManager, batch_id: str) -> None:
        self.rm = rm
        self.tag = f"batchgate-{batch_id}".lower()
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self.rm.name

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def application(self, app_id: str | None) -> YarnApp | None:
        """The batch's application, by id, else by its tag; None if YARN does not know it."""
        if app_id:
            return await self.rm.app(self._http(), app_id)
        return await self.rm.tagged(self._http(), self.tag)

    async def kill(self, app_id: str | None) -> str:
        """Kill the batch's application through the RM; what was done, for the batch log."""
        if not app_id:
            found = await self.application(None)
            if found is None:
                return ""
            app_id = found.app_id
        return await self.rm.kill(self._http(), app_id)

    async def ended(self, app_id: str, timeout: float = END_WAIT) -> YarnApp | None:
        """The application's report once YARN records its end (None if it does not within timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                app = await self.rm.app(self._http(), app_id)
            except RmUnavailable:
                app = None
            if app is not None and app.terminal:
                return app
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(END_POLL)

    async def jobmanager_log(self, app: YarnApp) -> list[Note | LogLines]:
        return await am_log_events(self.rm, self._http(), app, files=JOBMANAGER_LOGS)


def rest_url_of(app: YarnApp) -> str | None:
    """The JobManager's REST address of a running Flink application on YARN."""
    if app.state != "RUNNING" or not app.am_rpc_address:
        return None
    return f"http://{app.am_rpc_address}"


async def session_rest_url(rm: ResourceManager, app_id: str) -> str:
    """The REST address of the Flink session running as YARN application `app_id`; ValueError if it is
    not a running Flink session, RmUnavailable if the RM cannot say."""
    async with aiohttp.ClientSession() as session:
        app = await rm.app(session, app_id)
    if app is None:
        raise ValueError(f"YARN does not know the session application {app_id}")
    if app.application_type and app.application_type.lower() != "apache flink":
        raise ValueError(f"{app_id} is a {app.application_type} application, not a Flink session")
    url = rest_url_of(app)
    if url is None:
        raise ValueError(f"the Flink session {app_id} is {app.state}, not RUNNING")
    return url
