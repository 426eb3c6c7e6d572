"""What spark-submit's output tells about the application (its id, UI, YARN or Kubernetes state, driver id)
and why it failed; and the application id from the name of the event log Spark writes.

Pure parsing, so that it can be tested directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_APP_ID = r"(local-\d+|app-\d+-\d+|application_\d+_\d+|spark-[0-9a-f]{16,})"
_EVENT_LOG = re.compile(r"Logging events to \S*?" + _APP_ID)
_CONNECTED = re.compile(r"Connected to Spark cluster with app ID (app-\d+-\d+)")
_YARN_SUBMITTED = re.compile(r"(?:Submitted application|Submitting application) (application_\d+_\d+)")
_YARN_REPORT = re.compile(r"Application report for (application_\d+_\d+) \(state: (\w+)\)")
_YARN_TRACKING = re.compile(r"tracking URL: (\S+)")
_YARN_FINAL = re.compile(r"final status: (\w+)")
_K8S_DEPLOYED = re.compile(r"with application ID (spark-[0-9a-f]+) and submission ID ([^:\s]+):(\S+)")
_K8S_STATUS = re.compile(r"Application status for (spark-[0-9a-f]+) \(phase: (\w+)\)")
_DRIVER_ID = re.compile(r"(?:Submission successfully created as|Driver successfully submitted as) (driver-\d+-\d+)")
_UI_BOUND = re.compile(r"Bound SparkUI to \S+, and started at (https?://\S+)")
_UI_JETTY = re.compile(r"Start Jetty (\S+):\d+ for SparkUI")  # the port asked for, not the one bound
_UI_STARTED = re.compile(r"Successfully started service 'SparkUI' on port (\d+)")  # the one bound
_DRIVER_HOST = re.compile(r"BlockManagerId\(driver, ([^,\s]+), ")
_JAVA_MAIN = re.compile(r'Exception in thread "main" (.+)')
_SUBMIT_ERROR = re.compile(r"^Error: (.+)")
_LOG_ERROR = re.compile(r"^\S+ \S+ ERROR \S+: (.+)")
_PY_ERROR = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")
DIAGNOSTIC_MAX = 500


@dataclass
class LauncherFacts:
    """What the launcher's output said so far."""

    app_id: str | None = None
    ui_url: str | None = None
    tracking_url: str | None = None
    driver_id: str | None = None
    namespace: str | None = None
    pod: str | None = None
    yarn_state: str | None = None
    final_status: str | None = None
    k8s_phase: str | None = None


class LauncherOutput:
    """Reads spark-submit's output, line by line, for the application and for why it failed."""

    def __init__(self) -> None:
        self.facts = LauncherFacts()
        self._ui_host: str | None = None
        self._ui_port: str | None = None
        self._driver_host: str | None = None
        self._in_traceback = False
        self._strong: str | None = None
        self._weak: str | None = None

    @property
    def diagnostic(self) -> str | None:
        return self._strong or self._weak

    def feed(self, lines: list[str]) -> None:
        for line in lines:
            self._line(line.rstrip("\r"))

    def _line(self, line: str) -> None:
        f = self.facts
        if self._in_traceback:
            if line.startswith((" ", "\t")) or not line:
                return
            self._in_traceback = False
            if _PY_ERROR.match(line):
                self._strong = line[:DIAGNOSTIC_MAX]
                return
        if line.startswith("Traceback (most recent call last)"):
            self._in_traceback = True
            return
        self._facts(line, f)
        for pattern in (_JAVA_MAIN, _SUBMIT_ERROR):
            match = pattern.search(line)
            if match:
                self._strong = match.group(1)[:DIAGNOSTIC_MAX]
                return
        match = _LOG_ERROR.match(line)
        if match and self._weak is None:
            self._weak = match.group(1)[:DIAGNOSTIC_MAX]

    def _facts(self, line: str, f: LauncherFacts) -> None:
        for pattern in (_EVENT_LOG, _CONNECTED, _YARN_SUBMITTED):
            match = pattern.search(line)
            if match:
                f.app_id = match.group(1)
                return
        if match := _YARN_REPORT.search(line):
            f.app_id, f.yarn_state = match.group(1), match.group(2)
        elif match := _YARN_TRACKING.search(line):
            if match.group(1).startswith("http"):
                f.tracking_url = match.group(1)
        elif match := _YARN_FINAL.search(line):
            f.final_status = match.group(1)
        elif match := _K8S_DEPLOYED.search(line):
            f.app_id, f.namespace, f.pod = match.group(1), match.group(2), match.group(3)
        elif match := _K8S_STATUS.search(line):
            f.app_id, f.k8s_phase = match.group(1), match.group(2)
        elif match := _DRIVER_ID.search(line):
            f.driver_id = match.group(1)
        elif match := _UI_BOUND.search(line):
            f.ui_url = match.group(1)
        elif match := _UI_JETTY.search(line):
            if match.group(1) not in ("0.0.0.0", "::", "[::]"):
                self._ui_host = match.group(1)
        elif match := _UI_STARTED.search(line):
            self._ui_port = match.group(1)
            self._ui_from_parts()
        elif match := _DRIVER_HOST.search(line):
            self._driver_host = match.group(1)
            self._ui_from_parts()

    def _ui_from_parts(self) -> None:
        host = self._ui_host or self._driver_host
        if self.facts.ui_url is None and host and self._ui_port:
            self.facts.ui_url = f"http://{host}:{self._ui_port}"


def event_log_app_id(directory: Path) -> str | None:
    """The application id from the event log Spark writes into the batch's dir (eventlog_v2_<id>/ or <id>...)."""
    try:
        names = [p.name for p in directory.iterdir()]
    except OSError:
        return None
    for name in names:
        match = re.search(_APP_ID, name)
        if match:
            return match.group(1)
    return None
