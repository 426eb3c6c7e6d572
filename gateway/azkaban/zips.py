"""Azkaban project zips as batchgate job definitions (docs/azkaban.md, "Project zips").

Flow 1.0: `.job` files (Java properties) and `.properties` files, which the jobs of their directory and
of the directories below inherit (the nearer file wins, the job's own keys win over all). A flow is the
DAG that ends in a job no other job depends on, named after that job. Flow 2.0 (a `.project` file with
`azkaban-flow-version: 2.0`): each `.flow` YAML file is a flow named after the file, its `config` the
properties its nodes inherit.

Job types: `command` (LOCAL nodes, no shell: see `command_request`) and `spark` (a SPARK node). Any other
type is refused at upload, naming the job and the type. This module reads the zip and nothing else; the
manager saves what it returns through the job service, whose admission step checks every node.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.contract.batches import CONF_PROXY_USERS
from gateway.contract.jobs import NODE_ID
from gateway.errors import BadRequest

REFERENCE = re.compile(r"\$\{([^${}]+)\}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ONE_WORD = re.compile(r"^[^\s'\"\\]+$")  # a value that a shell would not split nor unquote
TYPES = ("command", "spark")
INTERPRETERS = {".sh": ("sh", "bash"), ".py": ("python", "python3")}
SPARK_CONF = {"master": "spark.master", "driver-memory": "spark.driver.memory",
              "executor-memory": "spark.executor.memory", "executor-cores": "spark.executor.cores",
              "num-executors": "spark.executor.instances", "queue": "spark.yarn.queue"}
MAX_TEXT = 1 << 20  # a .job, .properties or .flow file larger than this is refused
MAX_VALUE = 1 << 16  # a property whose ${...} references resolve to more characters than this is refused
ROOT = "\0root:"  # marks the zip's top directory in a file list (no zip entry can hold a NUL)


@dataclass
class AzJob:
    name: str
    props: dict[str, str]  # its own keys over the inherited ones
    dependencies: list[str]


@dataclass
class FlowSpec:
    """One flow as a batchgate job definition: nodes (NodeSpec's JSON), variables, Azkaban job types."""

    name: str
    nodes: list[dict[str, Any]]
    variables: dict[str, str] = field(default_factory=dict)


# --- reading -------------------------------------------------------------------------------------


def read_properties(text: str) -> dict[str, str]:
    """Java's .properties: `key=value`, `key: value` or `key value`; `#` and `!` comments; a line ending in
    a backslash goes on; `\\t`, `\\n`, `\\uXXXX` and escaped separators."""
    out: dict[str, str] = {}
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    for line in logical:
        key, i = [], 0
        while i < len(line) and line[i] not in "=: \t\f":
            if line[i] == "\\" and i + 1 < len(line):
                i += 1
            key.append(line[i])
            i += 1
        while i < len(line) and line[i] in " \t\f":
            i += 1
        if i < len(line) and line[i] in "=:":
            i += 1
        out["".join(key)] = _unescape(line[i:].lstrip(" \t\f"))
    return out


def _unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith("u"):
            return chr(int(code[1:], 16))
        return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(code, code)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", one, value)


def _text(archive: zipfile.ZipFile, name: str) -> str:
    info = archive.getinfo(name)
    if info.file_size > MAX_TEXT:
        raise BadRequest(f"Installation Failed.\n{name}: larger than {MAX_TEXT} bytes")
    try:
        return archive.read(name).decode()
    except UnicodeDecodeError:
        raise BadRequest(f"Installation Failed.\n{name}: not UTF-8 text") from None


def read_zip(path: Path) -> tuple[list[str], list[AzJob] | dict[str, list[AzJob]]]:
    """The zip's files, and its jobs: Flow 1.0's list, or Flow 2.0's jobs by flow. A zip whose files all
    lie in one top directory has its paths written relative to it, and `Root(top)` first in the list."""
    try:
        with zipfile.ZipFile(path) as archive:
            files = [n for n in archive.namelist() if not n.endswith("/")]
            root = _common_root(files)
            names = {n: n[len(root):] for n in files}
            project = [n for n, rel in names.items() if rel.endswith(".project")]
            listed = [ROOT + root, *names.values()] if root else list(names.values())
            if project and _flow_version(yaml.safe_load(_text(archive, project[0]))) == "2.0":
                return listed, _flow2(archive, names)
            return listed, _flow1(archive, names)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error):
        # damaged, encrypted, or compressed in a way zipfile cannot read
        raise BadRequest("Installation Failed.\nError unzipping file.") from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"Installation Failed.\nBad YAML: {exc}") from None
    except RecursionError:
        raise BadRequest("Installation Failed.\nA .flow file nested too deeply") from None


def _flow_version(document: Any) -> str:
    """A `.project` file's `azkaban-flow-version` (`2.0`: Flow 2.0), or "" without one."""
    version = document.get("azkaban-flow-version") if isinstance(document, dict) else None
    return f"{version:.1f}" if isinstance(version, float) else str(version or "")


def _common_root(files: list[str]) -> str:
    """Azkaban's zips often hold one top directory: the project's paths are relative to it."""
    tops = {f.split("/", 1)[0] for f in files}
    if len(tops) == 1 and all("/" in f for f in files):
        return tops.pop() + "/"
    return ""


def _flow1(archive: zipfile.ZipFile, names: dict[str, str]) -> list[AzJob]:
    by_dir: dict[str, dict[str, str]] = {}
    for name, rel in sorted(names.items(), key=lambda kv: kv[1]):
        if rel.endswith(".properties"):
            by_dir.setdefault(posixpath.dirname(rel), {}).update(read_properties(_text(archive, name)))
    jobs: list[AzJob] = []
    seen: dict[str, str] = {}
    for name, rel in sorted(names.items(), key=lambda kv: kv[1]):
        if not rel.endswith(".job"):
            continue
        job = posixpath.basename(rel)[:-len(".job")]
        if job in seen:
            raise BadRequest(f"Installation Failed.\nJob {job} is defined twice: {seen[job]} and {rel}")
        seen[job] = rel
        props: dict[str, str] = {}
        parts = posixpath.dirname(rel).split("/") if posixpath.dirname(rel) else []
        for depth in range(len(parts) + 1):
            props.update(by_dir.get("/".join(parts[:depth]), {}))
        props.update(read_properties(_text(archive, name)))
        deps = [d.strip() for d in props.get("dependencies", "").split(",") if d.strip()]
        jobs.append(AzJob(job, props, deps))
    if not jobs:
        raise BadRequest("Installation Failed.\nThe zip has no .job file (nor a Flow 2.0 .project and .flow files)")
    return jobs


def _flow2(archive: zipfile.ZipFile, names: dict[str, str]) -> dict[str, list[AzJob]]:
    flows: dict[str, list[AzJob]] = {}
    for name, rel in sorted(names.items(), key=lambda kv: kv[1]):
        if not rel.endswith(".flow"):
            continue
        document = yaml.safe_load(_text(archive, name)) or {}
        flow = posixpath.basename(rel)[:-len(".flow")]
        if not isinstance(document, dict) or not isinstance(document.get("nodes"), list):
            raise BadRequest(f"Installation Failed.\n{rel}: a flow file needs a list of nodes")
        config = _strings(document.get("config") or {}, rel)
        jobs: list[AzJob] = []
        for node in document["nodes"]:
            if not isinstance(node, dict) or not isinstance(node.get("name"), str):
                raise BadRequest(f"Installation Failed.\n{rel}: every node needs a name")
            props = {**config, **_strings(node.get("config") or {}, rel), "type": str(node.get("type", ""))}
            deps = node.get("dependsOn") or []
            if not isinstance(deps, list):
                raise BadRequest(f"Installation Failed.\n{rel}: dependsOn of {node['name']} must be a list")
            jobs.append(AzJob(node["name"], props, [str(d) for d in deps]))
        flows[flow] = jobs
    if not flows:
        raise BadRequest("Installation Failed.\nA Flow 2.0 project needs .flow files")
    return flows


def _strings(config: Any, where: str) -> dict[str, str]:
    if not isinstance(config, dict):
        raise BadRequest(f"Installation Failed.\n{where}: config must be a map")
    out: dict[str, str] = {}
    for key, value in config.items():
        if not isinstance(value, str | int | float | bool):
            raise BadRequest(f"Installation Failed.\n{where}: config {key} must be a single value")
        out[str(key)] = "true" if value is True else "false" if value is False else str(value)
    return out


# --- flows ---------------------------------------------------------------------------------------


def flows_of(jobs: list[AzJob] | dict[str, list[AzJob]], files: list[str], version: int) -> list[FlowSpec]:
    """Each flow with its nodes. Flow 1.0: one flow per job nobody depends on, with its ancestors."""
    if isinstance(jobs, dict):
        return [_flow(name, members, files, version) for name, members in jobs.items()]
    by_name = {j.name: j for j in jobs}
    for job in jobs:
        for dep in job.dependencies:
            if dep not in by_name:
                raise BadRequest(f"Installation Failed.\nJob {job.name} depends on {dep}, which is not in the zip")
    needed = {d for j in jobs for d in j.dependencies}
    out = []
    for end in (j for j in jobs if j.name not in needed):
        members: dict[str, AzJob] = {}
        todo = [end.name]
        while todo:
            name = todo.pop()
            if name not in members:
                members[name] = by_name[name]
                todo.extend(by_name[name].dependencies)
        out.append(_flow(end.name, [j for j in jobs if j.name in members], files, version))
    if not out:
        raise BadRequest("Installation Failed.\nThe jobs' dependencies form a cycle: no job ends a flow")
    return out


def _flow(name: str, jobs: list[AzJob], files: list[str], version: int) -> FlowSpec:
    if not NODE_ID.match(name):
        raise BadRequest(f"Installation Failed.\nFlow name {name!r}: use 1-128 letters, digits, '.', '_' or '-'")
    spec = FlowSpec(name, [])
    last: dict[str, str] = {}
    names = {j.name for j in jobs}
    for job in jobs:
        if not NODE_ID.match(job.name):
            raise BadRequest(f"Installation Failed.\nJob name {job.name!r}: use 1-128 letters, digits, '.', '_' "
                             "or '-'")
        unknown = [d for d in job.dependencies if d not in names]
        if unknown:
            raise BadRequest(f"Installation Failed.\nJob {job.name} of flow {name} depends on {unknown[0]}, "
                             "which the flow does not have")
        kind = job.props.get("type", "")
        resolve = _Resolver(job, spec.variables)
        if kind == "command":
            commands = [job.props.get("command", "")] + [
                job.props[k] for k in sorted((k for k in job.props if re.fullmatch(r"command\.\d+", k)),
                                             key=lambda k: int(k.split(".")[1]))]
            if not commands[0].strip():
                raise BadRequest(f"Installation Failed.\nJob {job.name}: type=command needs a command")
            previous: str | None = None
            for i, line in enumerate(commands):
                node_id = job.name if i == 0 else f"{job.name}.command.{i}"
                request = command_request(job.name, resolve(line), files, version, spec.variables)
                _proxy(request, job, resolve)
                deps = [previous] if previous else list(job.dependencies)
                spec.nodes.append({"id": node_id, "request": request, "dependsOn": deps})
                previous = node_id
            last[job.name] = previous or job.name
        elif kind == "spark":
            request = spark_request(job, resolve, files, version)
            _proxy(request, job, resolve)
            spec.nodes.append({"id": job.name, "request": request, "dependsOn": list(job.dependencies)})
        else:
            raise BadRequest(f"Installation Failed.\nJob {job.name}: job type {kind or '(none)'!r} is not "
                             f"supported on batchgate (it runs the types {', '.join(TYPES)})")
    for node in spec.nodes:  # a dependency on a job of several commands waits for its last one
        if node["id"] in names:
            node["dependsOn"] = [last.get(d, d) for d in node["dependsOn"]]
    return spec


def _proxy(request: dict[str, Any], job: AzJob, resolve: _Resolver) -> None:
    if job.props.get("user.to.proxy"):
        request.setdefault("conf", {})[CONF_PROXY_USERS[0]] = resolve(job.props["user.to.proxy"])


class _Resolver:
    """`${name}` in a job's values. A name that is an identifier, set in the job's properties to one word
    (no space, quote or backslash), becomes a variable of the flow's job (its value the default, so
    `flowOverride[name]` can change it at executeFlow) unless another job of the flow sees another value;
    any other set name is replaced now, before the command is split, as Azkaban does; a name set nowhere
    is refused."""

    def __init__(self, job: AzJob, variables: dict[str, str]) -> None:
        self._job = job
        self._variables = variables

    def __call__(self, value: str, depth: int = 0, keep: bool = True) -> str:
        """The value with its references replaced; `keep`: leave the identifiers that became variables
        (only at the top: a variable's default is fully resolved)."""
        out: list[str] = []
        size, at = 0, 0
        for match in REFERENCE.finditer(value):
            name = match.group(1)
            if name not in self._job.props:
                raise BadRequest(f"Installation Failed.\nJob {self._job.name}: ${{{name}}} is set neither in the "
                                 "job nor in the properties it inherits")
            if depth > 20:
                raise BadRequest(f"Installation Failed.\nJob {self._job.name}: ${{{name}}} refers to itself")
            resolved = self(self._job.props[name], depth + 1, keep=False)
            if (keep and IDENTIFIER.match(name) and ONE_WORD.match(resolved)
                    and self._variables.setdefault(name, resolved) == resolved):
                resolved = match.group(0)
            out += [value[at:match.start()], resolved]
            at = match.end()
            size += len(out[-2]) + len(resolved)
            if size > MAX_VALUE:
                raise BadRequest(f"Installation Failed.\nJob {self._job.name}: a value resolves to more than "
                                 f"{MAX_VALUE} characters")
        out.append(value[at:])
        return "".join(out)


def _in_zip(word: str, files: list[str]) -> str | None:
    path = posixpath.normpath(word[2:] if word.startswith("./") else word)
    return path if path in files else None


def _stored(path: str, files: list[str]) -> str:
    """A project path as the artifact stores it (under the zip's top directory, if it has one)."""
    root = files[0][len(ROOT):] if files and files[0].startswith(ROOT) else ""
    return root + path


def command_request(job: str, line: str, files: list[str], version: int,
                    variables: dict[str, str] | None = None) -> dict[str, Any]:
    """A `command` as a LOCAL batch, run without a shell. The line is split into words as a POSIX shell
    splits them (shlex: quotes and backslashes; no pipes, redirections, globs or `$VAR` expansion). The
    first word is the program. A program in the zip, or a `.sh` script run by `sh`/`bash` or a `.py` one
    run by `python`/`python3`, becomes the artifact resource (LOCAL runs it with /bin/sh or the gateway's
    Python, which the allow-list must name); other project files among the arguments are then passed as
    their path in the unpacked zip. Otherwise the program is looked up on PATH and must be on the LOCAL
    allow-list (the admission step checks it when the flow is saved)."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise BadRequest(f"Installation Failed.\nJob {job}: command {line!r} cannot be split ({exc})") from None
    if not words:
        raise BadRequest(f"Installation Failed.\nJob {job}: an empty command")
    program, args = words[0], words[1:]
    script = _in_zip(program, files)
    if script is None and args and (found := _in_zip(args[0], files)) is not None:
        suffix = posixpath.splitext(found)[1]
        shown = REFERENCE.sub(lambda m: (variables or {}).get(m.group(1), m.group(0)), program)
        if posixpath.basename(shown) in INTERPRETERS.get(suffix, ()) or (
                suffix == ".py" and posixpath.basename(shown).startswith("python")):
            script, args = found, args[1:]
    named = [a for a in args if _in_zip(a, files) is not None]
    if script is None:
        if named:
            raise BadRequest(f"Installation Failed.\nJob {job}: command {line!r} names the project file "
                             f"{named[0]}, but the files are unpacked only for a script the command runs (run it "
                             "as `sh x.sh` or `python3 x.py`, or as the program itself)")
        return {"batchType": "LOCAL", "resource": program, "args": args, "name": job}
    args = [f"artifact/{_stored(p, files)}" if (p := _in_zip(a, files)) is not None else a for a in args]
    return {"batchType": "LOCAL", "resource": f"artifact:{_stored(script, files)}@{version}", "args": args,
            "name": job}


def spark_request(job: AzJob, resolve: _Resolver, files: list[str], version: int) -> dict[str, Any]:
    """Azkaban's spark job type as a SPARK batch: `execution-jar` (a file of the zip) is the resource,
    `class` the main class, `params` the arguments (split as a command is), `conf.<key>` Spark's conf, and
    master, driver-memory, executor-memory, executor-cores, num-executors and queue their Spark keys."""
    jar = job.props.get("execution-jar", "")
    path = _in_zip(resolve(jar), files) if jar else None
    if path is None:
        raise BadRequest(f"Installation Failed.\nJob {job.name}: type=spark needs execution-jar, a file of the zip"
                         + (f" ({jar!r} is not)" if jar else ""))
    conf = {k[len("conf."):]: resolve(v) for k, v in job.props.items() if k.startswith("conf.")}
    conf.update({SPARK_CONF[k]: resolve(v) for k, v in job.props.items() if k in SPARK_CONF})
    try:
        args = shlex.split(resolve(job.props.get("params", "")))
    except ValueError as exc:
        raise BadRequest(f"Installation Failed.\nJob {job.name}: params cannot be split ({exc})") from None
    request: dict[str, Any] = {"batchType": "SPARK", "resource": f"artifact:{_stored(path, files)}@{version}",
                               "args": args,
                               "conf": conf, "name": job.name}
    if job.props.get("class"):
        request["className"] = resolve(job.props["class"])
    return request
