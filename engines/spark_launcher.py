"""One long-lived JVM that submits cluster-mode Spark applications to YARN, instead of a spark-submit JVM
per submit.

A cluster-mode spark-submit starts a JVM, loads Spark, Hadoop and YARN's client, uploads the staging
files, submits and exits: seconds of CPU and a few hundred MB for each batch (benchmarks/scenarios/
spark_launcher.py measures both ways in one run). Spark ships `org.apache.spark.launcher.
InProcessLauncher`, which runs SparkSubmit inside the JVM that calls it, and pyspark ships py4j and the
JVM it drives (`spark-submit pyspark-shell`, started the way pyspark itself starts it). So nothing is
compiled: the JVM is started once, and each submit is a thread in it, told what spark-submit would be
told (the same SubmitPlan: options, conf, resource, arguments; spark-defaults.conf is read there too).

It is used for cluster deploy mode on YARN when the gateway follows the ResourceManager and spark-submit
would not wait for the application (`spark.yarn.submit.waitAppCompletion=false`): a submission is done
when YARN has given the application its id. The JVM's output (every submission's log lines, mixed) goes
to `<dir>/launcher.log`. A JVM that cannot be started or that stops answering raises LauncherUnavailable;
the engine then uses the spark-submit process for that batch (the fallback), and the next submit starts a
new JVM. The JVM's stdin is a pipe from the gateway: it exits when the gateway does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from engines.base import EngineError, mark_launched
from engines.process import clean_env
from engines.spark_state import AppIds
from engines.spark_status import StatusUnavailable, YarnApi
from engines.spark_submit import SubmitPlan

START_TIMEOUT = 180.0  # a cold JVM on a busy machine
SUBMIT_TIMEOUT = 300.0  # a submission that has no application id after this is given up
HANDLE_POLL = 0.05  # how often a submission's handle is read (in its own thread, not on the event loop)
STOP_GRACE = 5.0


class LauncherUnavailable(Exception):
    """The long-lived launcher could not take this submission (the JVM did not start or stopped answering,
    or Spark refused the arguments); the message says why."""


@dataclass(frozen=True)
class Submitted:
    """How a submission ended: YARN's application id (None if there is none), the launcher's last state
    of it (SparkAppHandle.State: SUBMITTED, FAILED, LOST, ...), and how long it took."""

    app_id: str | None
    state: str
    seconds: float


class LauncherJvm:
    """The JVM, started on the first submit (and again after it died), and the submissions it runs."""

    def __init__(self, spark_home: Path, root: Path, *, python: str, parallel: int = 4, memory: str = "512m") -> None:
        self.spark_home = spark_home
        self.root = root
        self.python = python
        self.memory = memory
        self._slots = asyncio.Semaphore(parallel)
        self._start_lock = asyncio.Lock()
        self._proc: asyncio.subprocess.Process | None = None
        self._gateway: Any = None  # py4j's ClientServer, connected to the JVM

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def log_path(self) -> Path:
        return self.root / "launcher.log"

    async def submit(self, plan: SubmitPlan, timeout: float = SUBMIT_TIMEOUT) -> Submitted:
        """Run one cluster-mode submission in the JVM; returns once YARN has the application (or the
        submission failed). LauncherUnavailable if the JVM cannot take it."""
        async with self._slots:
            gateway = await self._running()
            try:
                return await asyncio.to_thread(_submit, gateway, plan, timeout)
            except Exception as exc:  # py4j's errors: a broken connection, or Spark refusing the arguments
                if self.pid is None or type(exc).__name__ == "Py4JNetworkError":
                    await self.close()  # the next submit starts a new JVM
                raise LauncherUnavailable(f"{type(exc).__name__}: {str(exc).strip()[:300]}") from None

    async def _running(self) -> Any:
        async with self._start_lock:
            if self._gateway is not None and self.pid is not None:
                return self._gateway
            await self.close()
            try:
                self._gateway = await self._start()
            except (OSError, ValueError, TimeoutError) as exc:
                await self.close()
                raise LauncherUnavailable(f"the launcher JVM did not start: {exc}") from None
            return self._gateway

    async def _start(self) -> Any:
        tmp = self.root / "tmp"
        await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
        conn = self.root / f"conn-{uuid.uuid4().hex}"
        env = clean_env({
            "SPARK_HOME": str(self.spark_home), "TMPDIR": str(tmp), "SPARK_CONNECT_MODE": "0",
            "_PYSPARK_DRIVER_CONN_INFO_PATH": str(conn), "PYSPARK_PYTHON": self.python,
            "PYSPARK_DRIVER_PYTHON": self.python,
        })
        opts = env.get("SPARK_SUBMIT_OPTS", "")
        env["SPARK_SUBMIT_OPTS"] = (opts + " " if opts else "") + f"-Djava.io.tmpdir={tmp}"
        argv = [str(self.spark_home / "bin" / "spark-submit"), "--driver-memory", self.memory,
                "--conf", "spark.ui.enabled=false", "pyspark-shell"]
        log = await asyncio.to_thread(open, self.log_path, "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=log, stderr=log, env=env, cwd=self.root,
                start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        # The JVM writes its port and secret to `conn` once it listens; a startup wait, not a state to follow.
        while not await asyncio.to_thread(conn.exists):
            if self._proc.returncode is not None:
                raise ValueError(f"it exited with {self._proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no connection file after {START_TIMEOUT:.0f}s; see {self.log_path}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)  # the file is written in one go, but let the writer close it
        port, secret = await asyncio.to_thread(_read_conn_info, conn)
        await asyncio.to_thread(conn.unlink, missing_ok=True)
        return await asyncio.to_thread(_connect, port, secret)

    async def close(self) -> None:
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(gateway.shutdown)
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the JVM stops when its stdin closes
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def submit_in_jvm(jvm: LauncherJvm, plan: SubmitPlan, workdir: Path, api: YarnApi, ids: AppIds
                        ) -> tuple[str | None, list[str]]:
    """Submit a batch through the long-lived launcher: (YARN's application id, or None if nothing reached
    YARN and spark-submit, the fallback, should submit it and say in its output what went wrong; the batch
    log's notes). EngineError if it cannot be known whether YARN has it (then nothing is submitted again)."""
    await asyncio.to_thread(mark_launched, workdir)  # a restarted gateway must never submit it a second time
    try:
        done = await jvm.submit(plan)
        outcome = (f"YARN has {done.app_id} after {done.seconds:.1f}s" if done.app_id else
                   f"the submission ended {done.state} after {done.seconds:.1f}s without an application "
                   f"(the launcher's log: {jvm.log_path})")
    except LauncherUnavailable as exc:
        done, outcome = None, f"the long-lived launcher could not take it: {exc}"
    notes = [f"submitting in the long-lived launcher (pid {jvm.pid or '-'}): {plan.display}", outcome]
    if done is not None and done.app_id:
        return done.app_id, notes
    async with aiohttp.ClientSession() as session:  # did it reach YARN all the same?
        try:
            found = await api.status(session, ids)
        except StatusUnavailable as exc:
            raise EngineError(f"{outcome}; and the ResourceManager cannot tell whether it has the application "
                              f"({exc}), so it is not submitted again") from None
    if found.found and found.app_id:
        return found.app_id, notes
    return None, [*notes, "nothing reached YARN: spark-submit submits it instead"]


def _read_conn_info(path: Path) -> tuple[int, str]:
    """The port and secret the JVM wrote (pyspark's format: a big-endian int, then a length-prefixed string)."""
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"a short connection file ({len(data)} bytes)")
    port, length = struct.unpack("!ii", data[:8])
    return port, data[8:8 + length].decode()


def _connect(port: int, secret: str) -> Any:
    from py4j.clientserver import ClientServer, JavaParameters, PythonParameters  # pyspark's dependency

    return ClientServer(java_parameters=JavaParameters(port=port, auth_token=secret, auto_convert=True),
                        python_parameters=PythonParameters(port=0, eager_load=False))


def _submit(gateway: Any, plan: SubmitPlan, timeout: float) -> Submitted:
    """In a worker thread: start the submission in the JVM and read its handle until YARN named the
    application or the submission ended."""
    started = time.monotonic()
    jvm = gateway.jvm
    launcher = jvm.org.apache.spark.launcher.InProcessLauncher()
    launcher.setMaster(plan.master.url).setDeployMode(plan.deploy_mode).setAppResource(plan.resource)
    for name, value in plan.options:
        launcher.addSparkArg(name, value)
    for key, value in plan.conf.items():
        launcher.setConf(key, value)
    if plan.app_args:
        args = gateway.new_array(jvm.java.lang.String, len(plan.app_args))
        for i, arg in enumerate(plan.app_args):
            args[i] = arg
        launcher.addAppArgs(args)
    handle = launcher.startApplication(gateway.new_array(jvm.org.apache.spark.launcher.SparkAppHandle.Listener, 0))
    try:
        while True:
            app_id, state = handle.getAppId(), handle.getState()
            if app_id or state.isFinal():
                return Submitted(str(app_id) if app_id else None, str(state.toString()), time.monotonic() - started)
            if time.monotonic() - started > timeout:
                return Submitted(None, "TIMEOUT", time.monotonic() - started)
            time.sleep(HANDLE_POLL)
    finally:
        with contextlib.suppress(Exception):
            handle.disconnect()  # the application lives on in YARN; the launcher forgets it
