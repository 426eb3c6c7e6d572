"""Follow mode: lines per second delivered to a client from a program that writes as fast as it can.

A LOCAL Python program prints N lines of 80 characters; a client opened the follow stream right after
the POST and counts `log` events as they arrive. The rate is the program's lines delivered over the time from the
first of them to the `end` event. The program's own writing time is reported beside it.
"""

from __future__ import annotations

import asyncio
import sys
import time

from benchmarks import harness
from benchmarks.report import Figure
from benchmarks.scenarios.common import submit

TARGET_RATE = 200_000.0
PROGRAM = (
    "import sys, time\n"
    "n = int(sys.argv[1])\n"
    "start = time.time()\n"
    "pad = 'x' * 60\n"
    "out = sys.stdout\n"
    "for i in range(0, n, 1000):\n"
    "    out.write(''.join(f'line {j:010d} {pad}\\n' for j in range(i, min(i + 1000, n))))\n"
    "out.flush()\n"
    "with open('write_time', 'w') as f: f.write(f'{start} {time.time()}')\n"
)


async def run(ctx: harness.Context) -> list[Figure]:
    n = ctx.sizes.follow_lines
    async with harness.running_gateway(ctx, "follow") as gw, harness.http_session(timeout=600) as session:
        meter = ctx.cpu_meter(gw)
        meter.start()
        batch = await submit(session, gw, {"batchType": "LOCAL", "resource": sys.executable, "name": "bench-follow",
                                           "args": ["-c", PROGRAM, str(n)]})
        usage0 = time.process_time()
        delivered = program_lines = 0
        first = last = 0.0
        ended = False
        async with session.get(f"{gw.api}/{batch['id']}/log/follow") as resp:
            tail = b""
            async for chunk in resp.content.iter_any():
                data = tail + chunk
                delivered += data.count(b"\nevent: log\n")
                mine = data.count(b"\ndata: line ")
                if mine and not first:
                    first = time.time()
                program_lines += mine
                if b"event: end\n" in data:
                    ended = True
                    last = time.time()
                    break
                tail = data[-11:]  # shorter than either pattern: nothing is counted twice
        client_cpu = time.process_time() - usage0
        meter.stop()
        meter.used["client"] = client_cpu
        write = (await asyncio.to_thread((gw.data_dir / "batches" / str(batch["id"]) / "write_time").read_text))
        w0, w1 = (float(v) for v in write.split())
    rate = program_lines / (last - first) if last > first else 0.0
    ctx.shared["follow"] = rate
    parts = [f"{name} {secs:.1f} s" for name, secs in meter.used.items() if name not in ("machine", "neighbours")]
    detail = (f"{n:,} program lines of 80 chars ({program_lines:,} delivered, with "
              f"{delivered - program_lines} lines of the gateway's own); "
              f"the program wrote them in {w1 - w0:.2f} s ({n / max(w1 - w0, 1e-9):,.0f} lines/s); the client got "
              f"the first line {first - w0:.2f} s after the program started and the end {last - w1:.2f} s after "
              f"it finished; CPU: {', '.join(parts)}; {harness.machine_share(meter)}")
    ok = rate >= TARGET_RATE and ended and program_lines == n
    return [harness.figure("follow", "lines/s delivered to a client", rate, "lines/s", target="≥ 200,000 lines/s",
                           ok=ok, detail=detail)]

