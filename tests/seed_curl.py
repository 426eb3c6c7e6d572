"""Runs a `curl` example from the seed pages (/work/shared/seeds, docs/kylin.md ...) as it is written.

The example's text is kept verbatim in the test. Only its placeholders are replaced (the server's
address, credentials, ids that exist only on the documentation's server), each replacement named by the
test. The command line is split the way a POSIX shell splits words (shlex), without a shell: a URL
with an unquoted `&` stays one word, as the page's author meant it. The real curl binary sends it, with
three flags added to read the outcome (`-s`, `-S` and `-w` for the status code) that change nothing in
the request.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from dataclasses import dataclass
from typing import Any

STATUS_MARK = "\n--curl-status--"


@dataclass
class CurlAnswer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def transcribe(example: str, replacements: dict[str, str]) -> list[str]:
    """The example's argv: continuation lines joined, placeholders replaced, words split."""
    text = example.strip().replace("\\\n", " ")
    for placeholder, value in replacements.items():
        assert placeholder in text, f"placeholder {placeholder!r} is not in the example {text!r}"
        text = text.replace(placeholder, value)
    argv = shlex.split(text)
    assert argv[0] == "curl", argv
    return argv


async def run_curl(example: str, replacements: dict[str, str], *, cwd: str | None = None,
                   timeout: float = 60) -> CurlAnswer:
    argv = transcribe(example, replacements)
    proc = await asyncio.create_subprocess_exec(
        argv[0], "-s", "-S", "-w", STATUS_MARK + "%{http_code}", *argv[1:],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, f"curl failed ({proc.returncode}): {err.decode(errors='replace')}"
    text, _, status = out.decode().rpartition(STATUS_MARK)
    return CurlAnswer(int(status), text)
