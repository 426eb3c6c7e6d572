"""Outbound requests (SLA webhooks): never to loopback, link-local, metadata or private addresses unless an
admin allows the host by name; checked on the URL, and again on the address the connection uses; redirects
never followed. Real receivers (aiohttp servers in the test) on this machine stand for internal services."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from gateway.schedules.alerts import Alerter
from gateway.security.outbound import OutboundRule, public
from tests.gateway_process import free_port
from tests.helpers import Api

INTERNAL = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[fd00:ec2::254]/",  # AWS's IPv6 metadata
    "http://100.100.100.200/",  # Alibaba's metadata, in the shared range
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/",
    "http://127.0.0.1:5432/",
    "http://0x7f.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://localhost:8080/",
    "http://LOCALHOST./",
    "http://app.localhost/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://10.1.2.3/",
    "http://192.168.0.1/",
    "http://172.16.0.1/",
    "http://224.0.0.1/",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_destinations_are_refused_unless_named(url: str) -> None:
    problem = OutboundRule().problem(url, "webhook")
    assert problem is not None and problem.startswith("webhook: host "), (url, problem)
    host = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0] if "[" not in url else \
        url.split("[", 1)[1].split("]", 1)[0]
    assert OutboundRule([host]).problem(url) is None, "an admin may allow it by name"
    assert OutboundRule([], named=[host]).problem(url) is None, "so is the mail host"


def test_public_destinations_and_url_rules() -> None:
    rule = OutboundRule()
    for url in ("https://hooks.example.com/x", "http://93.184.216.34:8080/x", "https://[2606:4700::1111]/"):
        assert rule.problem(url) is None, url
    for url, text in [("ftp://hooks.example.com/x", "not an http(s) URL"), ("http://a b/", "spaces"),
                      ("http://user:pw@hooks.example.com/", "credentials"), ("http://x:99999/", "not a valid URL")]:
        assert text in (rule.problem(url) or ""), url
    assert not public(ipaddress.ip_address("::ffff:127.0.0.1")) and public(ipaddress.ip_address("8.8.8.8"))


@dataclass
class Receiver:
    posts: list[str] = field(default_factory=list)
    redirect_to: str | None = None


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[[], Awaitable[tuple[Receiver, int]]]]:
    runners: list[web.AppRunner] = []

    async def start() -> tuple[Receiver, int]:
        rec = Receiver()

        async def hook(request: web.Request) -> web.Response:
            rec.posts.append(request.path)
            if rec.redirect_to:
                raise web.HTTPTemporaryRedirect(rec.redirect_to)
            return web.json_response({})

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return rec, port

    yield start
    for runner in runners:
        await runner.cleanup()


def alerter(rule: OutboundRule) -> Alerter:
    return Alerter(timeout=3, retries=1, backoff=0, smtp_host=None, smtp_port=25, smtp_from="x@y", smtp_timeout=1,
                   webhook_rule=rule)


async def test_the_resolved_address_is_checked_when_sending(receivers) -> None:  # type: ignore[no-untyped-def]
    """This machine's own name is no reserved name, but it resolves to this machine: refused at send time,
    with no request made, unless the name is allowed."""
    rec, port = await receivers()
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)}
    assert addresses and not any(public(ipaddress.ip_address(a)) for a in addresses), \
        f"this test needs the machine's name to resolve to a non-public address, not {addresses}"
    url = f"http://{name}:{port}/hook"
    assert OutboundRule().problem(url) is None, "the name alone passes"
    sender = alerter(OutboundRule())
    try:
        result = await sender.webhook(url, {"event": "sla_breach"}, "d1")
    finally:
        await sender.close()
    assert result["status"] == "refused" and result["attempts"] == 1, result
    assert "which the outbound rules do not allow" in result["error"] and rec.posts == []
    if "127.0.0.1" in addresses:
        sender = alerter(OutboundRule([name]))
        try:
            assert (await sender.webhook(url, {"event": "sla_breach"}, "d2"))["status"] == "delivered"
        finally:
            await sender.close()
        assert rec.posts == ["/hook"]


async def test_redirects_are_never_followed(receivers) -> None:  # type: ignore[no-untyped-def]
    allowed, port = await receivers()
    elsewhere, other_port = await receivers()
    allowed.redirect_to = f"http://localhost:{other_port}/hook"  # a host outside the list
    sender = alerter(OutboundRule(["127.0.0.1"]))
    try:
        result = await sender.webhook(f"http://127.0.0.1:{port}/hook", {"event": "sla_breach"}, "d1")
    finally:
        await sender.close()
    assert result["status"] == "failed" and "HTTP 307" in result["error"] and "not followed" in result["error"]
    assert allowed.posts == ["/hook"] and elsewhere.posts == [], "the POST never reaches the redirect's target"


async def test_the_gateway_refuses_internal_webhooks_by_default(api: Api) -> None:
    await api.call("POST", "/api/v1/jobs", json={"name": "etl", "nodes": [
        {"id": "n", "request": {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "pass"]}}]})
    for url in ("http://169.254.169.254/latest", "http://0x7f.1:5432/", "http://metadata.google.internal/"):
        status, body = await api.status_of("POST", "/api/v1/slas", json={
            "job": "etl", "rule": "FINISH_WITHIN", "duration": "1m", "webhook": url})
        assert status == 400 and body["message"].startswith("webhook: host "), body
        status, body = await api.status_of("POST", "/api/v1/batches", json={
            "batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "pass"],
            "conf": {"batchgate.sla.finishWithin": "1m", "batchgate.sla.webhook": url}})
        assert status == 400 and body["message"].startswith("conf.batchgate.sla.webhook: host "), body
    created: Any = await api.call("POST", "/api/v1/slas", json={
        "job": "etl", "rule": "FINISH_WITHIN", "duration": "1m", "webhook": "https://hooks.example.com/x"})
    assert created["webhook"] == "https://hooks.example.com/x"
