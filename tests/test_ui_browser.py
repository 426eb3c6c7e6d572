"""The web page in headless Chromium (Debian's chromium, driven by Playwright): log in, submit through
the form, watch the state change live, read the log, kill, follow a DAG run, log out; on a laptop
screen and a phone, by keyboard, with no request leaving the gateway.

Two of them stay in the fast subset (-m "not slow"): the log-in, submit, watch, read, kill and log-out
walk-through, and the live list; the others take longer and are marked slow. Screenshots land in the
test's tmp dir; with BATCHGATE_UPDATE_SCREENSHOTS=1 also in docs/images/ (the
README shows those)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from yarl import URL

from gateway.client import Client
from tests.gateway_process import GatewayProcess
from tests.live_gateway import live_gateway

pytestmark = pytest.mark.timeout(300)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
PY = sys.executable
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def gateway(tmp_path: Path, database_url: str) -> AsyncIterator[GatewayProcess]:
    async with live_gateway(tmp_path, database_url) as gw:
        yield gw


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/install-browser installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Page:
    """A browser tab that records what a test must never see: page errors and foreign requests."""

    def __init__(self, page: Any, origin: str, shots: Path) -> None:
        self.page = page
        self.origin = origin
        self.shots = shots
        self.errors: list[str] = []
        self.foreign: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", self._request)
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

    def _request(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    async def shot(self, name: str, *, full_page: bool = False) -> Path:
        path = self.shots / f"ui-{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("BATCHGATE_UPDATE_SCREENSHOTS"):
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_IMAGES / path.name)
        return path

    async def shot_of(self, selector: str, name: str) -> Path:
        """A screenshot of one element (a picture), kept like the page's."""
        path = self.shots / f"ui-{name}.png"
        await self.page.locator(selector).screenshot(path=str(path))
        assert path.stat().st_size > 2_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("BATCHGATE_UPDATE_SCREENSHOTS"):
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_IMAGES / path.name)
        return path

    async def state_of_page(self) -> str:
        value: str = await self.page.get_attribute("#batch-state .badge", "data-state")
        return value


async def new_page(browser: Any, gateway: GatewayProcess, tmp_path: Path, viewport: dict[str, int],
                   timezone: str = "UTC") -> Page:
    context = await browser.new_context(viewport=viewport, base_url=gateway.url, timezone_id=timezone)
    return Page(await context.new_page(), gateway.url, tmp_path)


async def until(page: Any, expression: str, timeout: float = 20) -> None:
    """Wait until a JavaScript expression is true (wait_for_function would need eval, which the page's CSP
    refuses)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(expression):
        assert loop.time() < deadline, f"still false after {timeout}s: {expression}"
        await asyncio.sleep(0.1)


async def log_in(p: Page, user: str = "alice", password: str = "a-pass") -> None:
    await p.page.goto("/ui/")
    await p.page.wait_for_selector("#login-user")
    await p.page.fill("#login-user", user)
    await p.page.fill("#login-password", password)
    await p.page.press("#login-password", "Enter")
    await p.page.wait_for_selector("table.batches, #list-status")


async def test_log_in_submit_watch_read_kill_log_out(browser: Any, gateway: GatewayProcess, tmp_path: Path) -> None:
    p = await new_page(browser, gateway, tmp_path, LAPTOP)
    page = p.page
    await page.goto("/ui/batches")
    await page.wait_for_selector("#login-user")
    assert "/ui/login?next=%2Fui%2Fbatches" in page.url, "no session: the login form"
    await page.fill("#login-user", "alice")
    await page.fill("#login-password", "wrong")
    await page.click("form button[type=submit]")
    await page.wait_for_selector("[role=alert]")
    assert "invalid user name or password" in await page.inner_text("[role=alert]")
    await page.fill("#login-password", "a-pass")
    await page.click("form button[type=submit]")
    await page.wait_for_url("**/ui/batches")
    await page.wait_for_selector("#list-status:has-text('No batches')")
    assert await page.inner_text("#who-name") == "alice"
    cookies = await page.context.cookies()
    session = next(c for c in cookies if c["name"] == "batchgate_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == "", "the token is out of reach of scripts"

    # Submit through the form: first the gateway's own validation message, then a real batch.
    await page.get_by_role("link", name="Submit a batch", exact=True).click()
    await page.select_option("#s-type", "LOCAL")
    await page.click("#submit-form button[type=submit]")
    await page.wait_for_selector("#s-resource-field #submit-error[role=alert]")
    assert await page.inner_text("#submit-error") == \
        "Resource: required (or choose a file under “Upload resource file”)", "the form's words, not the API's"
    assert await page.get_attribute("#s-resource", "aria-invalid") == "true"
    assert await page.evaluate("document.activeElement.id") == "s-resource", "focus goes to the field named"
    await p.shot("submit")
    await page.fill("#s-resource", PY)
    await page.fill("#s-name", "ticker")
    # Arguments one box each: the second holds a program of several lines, as `python3 -c` takes it.
    await page.fill("#s-arg-0", "-c")
    await page.click("#s-add-arg")
    await page.fill("#s-arg-1", "import time\nfor i in range(40):\n    print('tick', i, flush=True)\n    time.sleep(0.05)")
    await page.evaluate("window.__sameDocument = true")
    await page.click("#submit-form button[type=submit]")
    await page.wait_for_url("**/ui/batches/*")
    batch_id = page.url.rsplit("/", 1)[1]
    seen = {await p.state_of_page()}
    for _ in range(300):
        state = await p.state_of_page()
        seen.add(state)
        if state == "FINISHED":
            break
        await asyncio.sleep(0.05)
    assert "FINISHED" in seen and len(seen) >= 2, f"the state changed live: {seen}"
    assert await page.evaluate("window.__sameDocument") is True, "without reloading the page"

    # The log, with its line numbers.
    await page.wait_for_selector("#log-status:has-text('end of log')")
    rows = await page.eval_on_selector_all(
        "#log .line", "els => els.map(e => [Number(e.dataset.n), e.querySelector('.tx').textContent])")
    assert [n for n, _ in rows] == list(range(len(rows)))
    assert [t for _, t in rows if t.startswith("tick")] == [f"tick {i}" for i in range(40)]
    assert (await page.inner_text("#log .line[data-n='0'] .ln")) == "0"
    await page.fill("#log-from", "5")
    await page.locator("#log-from").locator("xpath=..").get_by_role("button", name="Go", exact=True).click()
    await page.wait_for_selector("#log-status:has-text('end of log')")
    assert await page.get_attribute("#log .line:first-child", "data-n") == "5"
    await page.wait_for_selector("#details td:has-text('running')")
    # The timeline of its lifecycle steps: one bar per timed step, in order, as the details say.
    await page.wait_for_selector("#steps-timeline svg g.row")
    with Client(gateway.url, user="alice", password="a-pass") as bg:
        steps = (await asyncio.to_thread(bg.details, batch_id)).steps
    drawn = await page.eval_on_selector_all(
        "#steps-timeline g.row", "els => els.map(e => [e.dataset.name, Number(e.dataset.start), Number(e.dataset.end)])")
    assert drawn == [[st.name, st.start or 0, st.end or 0] for st in steps], drawn
    assert await page.locator("#steps-timeline rect.bar").count() == sum(1 for st in steps if st.start)
    await p.shot_of("#steps-timeline", "batch-timeline")
    await p.shot("batch", full_page=True)

    # Kill another batch from the list.
    with Client(gateway.url, user="alice", password="a-pass") as bg:
        victim = await asyncio.to_thread(bg.submit, {
            "batchType": "LOCAL", "resource": PY, "name": "sleeper",
            "args": ["-c", "import time; print('zz', flush=True); time.sleep(120)"]})
        await asyncio.to_thread(bg.wait, batch_id, timeout=10)
    await page.get_by_role("navigation").get_by_role("link", name="Batches", exact=True).click()
    row = page.locator(f"tr[data-id='{victim.id}']")
    await row.locator(".badge[data-state='RUNNING']").wait_for(timeout=20_000)
    await p.shot("batches")
    await row.locator("button[data-action=kill]").click()
    await row.locator(".badge[data-state='CANCELED']").wait_for(timeout=20_000)
    assert await row.locator("button[data-action=kill]").is_hidden()
    await page.wait_for_selector(f"tr[data-id='{batch_id}'] .badge[data-state='FINISHED']")

    # Log out: the session ends on the server too.
    await page.click("#logout")
    await page.wait_for_selector("#login-user")
    response = await page.request.get("/api/v1/batches", headers={"Cookie": f"batchgate_session={session['value']}"})
    assert response.status == 401 and "revoked" in (await response.json())["message"]
    await page.goto("/ui/batches")
    await page.wait_for_selector("#login-user")
    assert not p.errors and not p.foreign, (p.errors, p.foreign)


@pytest.mark.slow
async def test_pause_resume_restart_on_the_batch_page(browser: Any, gateway: GatewayProcess, tmp_path: Path) -> None:
    p = await new_page(browser, gateway, tmp_path, LAPTOP)
    await log_in(p)
    with Client(gateway.url, user="alice", password="a-pass") as bg:
        batch = await asyncio.to_thread(bg.submit, {
            "batchType": "LOCAL", "resource": PY, "name": "pausable",
            "args": ["-c", "import time\nfor i in range(600): print('beat', i, flush=True); time.sleep(0.1)"]})
    page = p.page
    await page.goto(f"/ui/batches/{batch.id}")
    await page.wait_for_selector("#batch-state .badge[data-state='RUNNING']", timeout=20_000)
    await page.click("button[data-action=pause]")
    await page.wait_for_selector("#batch-state .badge[data-state='PAUSED']")
    await page.click("button[data-action=resume]")
    await page.wait_for_selector("#batch-state .badge[data-state='RUNNING']")
    await page.click("button[data-action=kill]")
    await page.wait_for_selector("#batch-state .badge[data-state='CANCELED']", timeout=20_000)
    await page.click("button[data-action=restart]")
    await page.wait_for_url(lambda url: "/ui/batches/" in url and batch.id not in url)
    await page.wait_for_selector("#batch-state .badge[data-state='RUNNING']", timeout=20_000)
    assert batch.id in await page.inner_text("dl.fields-grid"), "the restart shows what it restarted"
    await page.click("button[data-action=kill]")
    await page.wait_for_selector("#batch-state .badge[data-state='CANCELED']", timeout=20_000)
    assert not p.errors and not p.foreign, (p.errors, p.foreign)


@pytest.mark.slow
async def test_phone_and_keyboard(browser: Any, gateway: GatewayProcess, tmp_path: Path) -> None:
    with Client(gateway.url, user="alice", password="a-pass") as bg:
        for i, word in enumerate(("alpha", "beta", "gamma")):
            b = await asyncio.to_thread(bg.submit, {"batchType": "LOCAL", "resource": PY, "name": f"report {word}",
                                                    "args": ["-c", f"print({i})"]})
        await asyncio.to_thread(bg.wait, b.id, timeout=30)
    p = await new_page(browser, gateway, tmp_path, PHONE)
    page = p.page
    await page.goto("/ui/")
    await page.wait_for_selector("#login-user")
    # Keyboard only: the form has the focus, Tab goes to the password, Enter submits.
    assert await page.evaluate("document.activeElement.id") == "login-user"
    await page.keyboard.type("alice")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "login-password"
    await page.keyboard.type("a-pass")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("tr[data-id] .badge[data-state='FINISHED']")
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"no sideways scrolling on a phone ({overflow}px)"
    assert await page.is_hidden("table.batches thead th:first-child") or \
        await page.evaluate("getComputedStyle(document.querySelector('table.batches thead')).position") == "absolute"
    await p.shot("phone", full_page=True)
    first = await page.evaluate(
        "document.querySelector('a[href], button:not([hidden]), input, select, textarea').className")
    assert first == "skip", "the first stop in the tab order skips to the content"
    await page.focus(".skip")
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    link = page.locator("tr[data-id] td a").first
    await link.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#log-status:has-text('end of log')")
    outline = await page.evaluate(
        "(() => { const b = document.querySelector('#log-follow'); b.focus(); return getComputedStyle(b).outlineStyle; })()")
    assert outline != "none", "focus is visible"

    # Filters and paging live in the URL, so a filtered page can be bookmarked.
    await page.goto("/ui/batches?size=1")
    await page.wait_for_selector("#list-status:has-text('1–1 of 3')")
    await page.get_by_role("link", name="Next →", exact=True).click()
    await page.wait_for_selector("#list-status:has-text('2–2 of 3')")
    assert await page.locator("tr[data-id]").count() == 1
    await page.goto("/ui/batches")
    await page.wait_for_selector("#list-status:has-text('of 3')")
    assert not await page.is_visible("#f-key"), "on a phone the filters start folded"
    await page.click("summary:has-text('Filters')")
    await page.fill("#f-key", "beta")
    await page.check("input[name=state][value=FINISHED]")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url("**/ui/batches?state=FINISHED&key=beta")
    await page.wait_for_selector("#list-status:has-text('1–1 of 1')")
    assert await page.inner_text("tr[data-id] td a") == "report beta"
    await page.goto("/ui/batches?state=CANCELED")
    await page.wait_for_selector("#list-status:has-text('No batches match')")
    assert not p.errors and not p.foreign, (p.errors, p.foreign)


async def test_assets_are_local_and_locked_down(gateway: GatewayProcess) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/ui/") as resp:
            html = await resp.text()
            assert resp.status == 200 and resp.content_type == "text/html"
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "http://" not in html and "https://" not in html, "no CDN"
        for name in ("app.js", "api.js", "dom.js", "batches.js", "batch.js", "submit.js", "login.js", "app.css",
                     "charts.js", "events.js", "overview.js"):
            async with http.get(f"{gateway.url}/ui/assets/{name}") as resp:
                body = await resp.text()
                assert resp.status == 200, name
                assert "https://" not in body and "http://" not in body.replace("http://www.w3.org/2000/svg", ""), name
        for bad in ("../ui.py", "%2e%2e%2fui.py", "..%2F..%2Fsessions.py", "../../../gateway/security/sessions.py"):
            async with http.get(URL(f"{gateway.url}/ui/assets/{bad}", encoded=True)) as resp:
                body = await resp.text()
                assert "import" not in body, f"{bad}: never a file from outside gateway/ui/"
                assert resp.status == 404 or resp.content_type == "text/html", bad
        for missing in ("index.html", "nope.js", "app.py"):
            async with http.get(f"{gateway.url}/ui/assets/{missing}") as resp:
                assert resp.status == 404, missing
        async with http.get(gateway.url + "/ui/batches/x/y") as resp:
            assert resp.status == 200 and "app.js" in await resp.text(), "deep links load the page"


def dag_node(node_id: str, deps: list[str], seconds: float) -> dict[str, Any]:
    program = f"import time; print('node {node_id}', flush=True); time.sleep({seconds})"
    return {"id": node_id, "dependsOn": deps,
            "request": {"batchType": "LOCAL", "resource": PY, "args": ["-c", program]}}


@pytest.mark.slow
async def test_jobs_runs_and_schedules(browser: Any, gateway: GatewayProcess, tmp_path: Path) -> None:
    with Client(gateway.url, user="alice", password="a-pass") as bg:
        await asyncio.to_thread(bg.create_job, {
            "name": "nightly", "description": "extract, two transforms, load",
            "nodes": [dag_node("extract", [], 1.0), dag_node("clean", ["extract"], 1.5),
                      dag_node("enrich", ["extract"], 0.2), dag_node("load", ["clean", "enrich"], 0.2)]})
        schedule = await asyncio.to_thread(bg.create_schedule, {"job": "nightly", "cron": "0 3 * * *",
                                                                "timezone": "Europe/Paris"})
    p = await new_page(browser, gateway, tmp_path, LAPTOP)
    await log_in(p)
    page = p.page
    await page.get_by_role("navigation").get_by_role("link", name="Jobs", exact=True).click()
    await page.locator("table").get_by_role("link", name="nightly", exact=True).click()
    await page.wait_for_selector(".dag svg g[data-node='load']")
    edges = await page.locator(".dag svg path.edge").count()
    assert edges == 4, "each dependency is drawn"
    await page.click("button[data-action=trigger]")
    await page.wait_for_url("**/ui/runs/*")
    clean = page.locator(".dag g[data-node='clean']")
    seen: list[str] = []
    for _ in range(400):
        cls = await clean.get_attribute("class") or ""
        if not seen or seen[-1] != cls:
            seen.append(cls)
        if "st-running" in cls and not (tmp_path / "ui-run.png").exists():
            await p.shot("run")
        if await page.locator("#run-state .badge[data-state='SUCCEEDED']").count():
            break
        await asyncio.sleep(0.05)
    assert any("st-running" in c for c in seen) and "st-succeeded" in seen[-1], f"live node states: {seen}"
    assert "st-succeeded" in (await page.get_attribute(".dag g[data-node='load']", "class") or "")
    assert await page.locator("#run-nodes .badge[data-state='SUCCEEDED']").count() == 4
    # The run's timeline: a bar per node from its start to its end; a node starts after what it depends on.
    await until(page, "document.querySelectorAll('#run-gantt g.row').length === 4 && "
                      "[...document.querySelectorAll('#run-gantt g.row')].every(g => Number(g.dataset.end) > 0)")
    bars = {name: (start, end) for name, start, end in await page.eval_on_selector_all(
        "#run-gantt g.row", "els => els.map(e => [e.dataset.name, Number(e.dataset.start), Number(e.dataset.end)])")}
    assert set(bars) == {"extract", "clean", "enrich", "load"}
    assert bars["extract"][1] <= bars["clean"][0] and bars["clean"][1] <= bars["load"][0], bars
    assert bars["clean"][1] - bars["clean"][0] >= 1500, "clean sleeps 1.5 s"
    await p.shot_of("#run-gantt", "run-timeline")
    await page.click(".dag a:has(g[data-node='clean'])")
    await page.wait_for_selector("#log-status:has-text('end of log')")
    assert "node clean" in await page.inner_text("#log")

    await page.get_by_role("navigation").get_by_role("link", name="Runs", exact=True).click()
    await page.wait_for_selector("tr[data-id] .badge[data-state='SUCCEEDED']")
    await page.get_by_role("navigation").get_by_role("link", name="Schedules", exact=True).click()
    row = page.locator(f"tr[data-id='{schedule.id}']")
    await row.wait_for()
    fires = await row.locator("ol.fires time").evaluate_all("els => els.map(e => e.getAttribute('datetime'))")
    expected = [datetime.fromtimestamp(t / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                for t in schedule.next_fire_times]
    assert fires == expected, "the next five fire times, as the gateway computed them"
    assert len(fires) == 5
    await p.shot("schedules")
    assert not p.errors and not p.foreign, (p.errors, p.foreign)


def test_page_files_ship_in_the_wheel(tmp_path: Path) -> None:
    import subprocess
    import zipfile

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("batchgate-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {f"gateway/ui/{f.name}" for f in (root / "gateway" / "ui").iterdir() if f.is_file()}
    assert "gateway/ui/index.html" in sources and "gateway/ui/app.js" in sources
    assert sources <= shipped, f"missing from the wheel: {sources - shipped}"


def _offset(when: datetime) -> str:
    """UTC+1, UTC-5, UTC: how the page names a zone."""
    delta = when.utcoffset()
    assert delta is not None
    minutes = int(delta.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'+' if minutes > 0 else '-'}{hours}" + (f":{rest:02d}" if rest else "")


@pytest.mark.slow
async def test_schedule_times_in_their_zone_and_ticks_on_an_axis(browser: Any, gateway: GatewayProcess,
                                                                  tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    with Client(gateway.url, user="alice", password="a-pass") as bg:
        await asyncio.to_thread(bg.create_job, {"name": "tiny", "nodes": [dag_node("only", [], 0)]})
        nightly = await asyncio.to_thread(bg.create_schedule, {"job": "tiny", "cron": "0 3 * * *",
                                                               "timezone": "Europe/Paris"})
        often = await asyncio.to_thread(bg.create_schedule, {"job": "tiny", "every": "2s", "timezone": "Asia/Kolkata",
                                                             "concurrency": "skip"})
        for _ in range(200):
            ticks = await asyncio.to_thread(bg.schedule_ticks, often.id)
            if ticks.total >= 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.to_thread(bg.update_schedule, often.id, {"job": "tiny", "every": "2s", "timezone": "Asia/Kolkata",
                                                               "concurrency": "skip", "enabled": False})
        for _ in range(200):  # a tick fired just before the disable settles its outcome
            past = (await asyncio.to_thread(bg.schedule_ticks, often.id)).ticks
            if all(t.outcome != "PENDING" for t in past):
                break
            await asyncio.sleep(0.1)
        assert len(past) >= 2 and all(t.outcome != "PENDING" for t in past), past
    p = await new_page(browser, gateway, tmp_path, LAPTOP, timezone="America/New_York")
    await log_in(p)
    page = p.page
    await page.get_by_role("navigation").get_by_role("link", name="Schedules", exact=True).click()
    row = page.locator(f"tr[data-id='{nightly.id}']")
    await row.wait_for()

    # 03:00 in Paris, labelled, with the viewer's New York time beside it.
    first = nightly.next_fire_times[0]
    paris = datetime.fromtimestamp(first / 1000, ZoneInfo("Europe/Paris"))
    york = datetime.fromtimestamp(first / 1000, ZoneInfo("America/New_York"))
    shown = await row.locator("ol.fires li").first.inner_text()
    assert shown == (f"{paris:%Y-%m-%d %H:%M:%S} {_offset(paris)} · {york:%Y-%m-%d %H:%M:%S} {_offset(york)} your time"), shown
    assert paris.hour == 3 and "03:00:00" in shown

    # Both schedules' ticks on an axis: the next five hollow, the past ones filled, by outcome.
    axis = row.locator(".chart.ticks")
    nexts = await axis.locator("circle.next").evaluate_all("els => els.map(e => Number(e.dataset.time))")
    assert nexts == nightly.next_fire_times
    often_row = page.locator(f"tr[data-id='{often.id}']")
    drawn = await often_row.locator(".chart.ticks circle.past").evaluate_all(
        "els => els.map(e => [Number(e.dataset.time), e.dataset.outcome])")
    assert sorted(drawn) == sorted([t.fire_time, t.outcome] for t in past), drawn
    assert "Asia/Kolkata (UTC+5:30)" in await often_row.locator(".ticks-box .chart-caption").inner_text()
    await p.shot_of(f"tr[data-id='{often.id}'] .ticks-box", "schedule-ticks")
    await p.shot("schedules-zones", full_page=True)
    assert not p.errors and not p.foreign, (p.errors, p.foreign)


@pytest.mark.slow
async def test_overview_pictures(browser: Any, gateway: GatewayProcess, tmp_path: Path) -> None:
    with Client(gateway.url, user="alice", password="a-pass") as bg:
        done = [await asyncio.to_thread(bg.submit, {"batchType": "LOCAL", "resource": PY, "args": ["-c", code]})
                for code in ("pass", "pass", "raise SystemExit(1)")]
        for batch in done:
            await asyncio.to_thread(bg.wait, batch.id, timeout=30)
        sleeper = await asyncio.to_thread(bg.submit, {"batchType": "LOCAL", "resource": PY, "name": "sleeper",
                                                      "args": ["-c", "import time; print('up', flush=True); time.sleep(120)"]})
    with Client(gateway.url, user="bob", password="b-pass") as bob:
        await asyncio.to_thread(bob.submit, {"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"]})
    p = await new_page(browser, gateway, tmp_path, LAPTOP)
    await log_in(p)
    page = p.page
    await page.get_by_role("navigation").get_by_role("link", name="Overview", exact=True).click()
    await page.wait_for_selector("#chart-over-time g.bucket", state="attached")

    async def created() -> dict[str, int]:
        return await page.eval_on_selector_all("#chart-over-time rect.bar", """els => els.reduce((acc, e) => {
            acc[e.dataset.state] = (acc[e.dataset.state] || 0) + Number(e.dataset.count); return acc; }, {})""")

    await until(page, "[...document.querySelectorAll('#chart-over-time g.bucket')]"
                      ".some(g => Number(g.dataset.running) >= 1)")
    assert await created() == {"FINISHED": 2, "ERROR": 1, "RUNNING": 1}, "alice's four, not bob's"
    limit = page.locator("#chart-limits g.limit[data-name='all batches']")
    assert await limit.get_attribute("data-running") == "1" and await limit.get_attribute("data-limit") == "0"
    assert await page.locator("#chart-limits g.limit[data-name='user alice']").count() == 1
    assert await page.locator("#chart-limits g.limit[data-name='LOCAL']").get_attribute("data-running") == "1"
    caption = await page.inner_text("#chart-over-time .chart-caption")
    assert "Times in UTC, your zone" in caption, caption
    await p.shot_of("#chart-over-time", "overview-batches")
    await p.shot_of("#chart-limits", "overview-limits")
    await p.shot("overview", full_page=True)

    # It follows the batches as they change: the kill shows without a reload.
    await page.evaluate("window.__sameDocument = true")
    with Client(gateway.url, user="alice", password="a-pass") as bg:
        await asyncio.to_thread(bg.kill, sleeper.id)
    await until(page, "document.querySelector(\"#chart-limits g.limit[data-name='all batches']\")"
                      ".dataset.running === '0'")
    assert await created() == {"FINISHED": 2, "ERROR": 1, "CANCELED": 1}
    assert await page.evaluate("window.__sameDocument") is True
    assert not p.errors and not p.foreign, (p.errors, p.foreign)


async def test_the_list_follows_events_not_a_poll(browser: Any, gateway: GatewayProcess, tmp_path: Path) -> None:
    with Client(gateway.url, user="alice", password="a-pass") as bg:
        batch = await asyncio.to_thread(bg.submit, {"batchType": "LOCAL", "resource": PY, "name": "short",
                                                    "args": ["-c", "import time; print('up', flush=True); time.sleep(3)"]})
    p = await new_page(browser, gateway, tmp_path, LAPTOP)
    await log_in(p)
    page = p.page
    row = page.locator(f"tr[data-id='{batch.id}']")
    await row.locator(".badge[data-state='RUNNING']").wait_for(timeout=20_000)
    lists: list[str] = []
    page.on("request", lambda request: lists.append(request.url)
            if urlsplit(request.url).path == "/api/v1/batches" else None)
    await row.locator(".badge[data-state='FINISHED']").wait_for(timeout=20_000)
    assert lists == [], f"the state came with the batch events, not by reading the list again: {lists}"
    assert not p.errors and not p.foreign, (p.errors, p.foreign)
