"""A secured gateway in a process of its own, for the client, CLI and browser tests: a users file with
bcrypt hashes, an admin, and the LOCAL engine on."""

from __future__ import annotations

import asyncio
import faulthandler
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import bcrypt

from tests.gateway_process import GatewayProcess

USERS = {"alice": "a-pass", "bob": "b-pass", "root": "r-pass"}


def write_users(path: Path, users: dict[str, str] | None = None) -> Path:
    path.write_text("".join(
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
        for user, pw in (users or USERS).items()
    ))
    return path


@asynccontextmanager
async def live_gateway(tmp_path: Path, database_url: str, *, name: str = "g",
                       env: dict[str, str] | None = None, users: dict[str, str] | None = None,
                       admins: tuple[str, ...] = ("root",),
                       extra_args: tuple[str, ...] = ()) -> AsyncIterator[GatewayProcess]:
    """`users` (name: password) replace the default ones; `admins` are named with --admin."""
    users_file = write_users(tmp_path / f"users-{name}", users)
    admin_args = [arg for admin in admins for arg in ("--admin", admin)]
    gateway = GatewayProcess(
        tmp_path / f"data-{name}", database_url=database_url, instance_id=name, env=env,
        extra_args=["--users-file", str(users_file), *admin_args, "--engines", "LOCAL", *extra_args],
    )
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def in_thread(fn: Callable[[], None], timeout: float = 180) -> None:
    """Run blocking client code in a daemon thread (so that a hang cannot keep pytest from exiting),
    and fail with every thread's stack if it does not finish in time."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def target() -> None:
        def settle(error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        try:
            fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, exc)
        else:
            loop.call_soon_threadsafe(settle, None)

    threading.Thread(target=target, name="client-scenario", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        faulthandler.dump_traceback(file=sys.stderr)
        raise AssertionError(f"client scenario still running after {timeout}s; stacks on stderr") from None
