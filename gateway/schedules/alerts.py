"""Alerts: a JSON POST to a webhook (retries with backoff, a timeout per attempt), and e-mail over SMTP.

Nothing here blocks the event loop: the webhook goes through aiohttp, and smtplib runs in a thread.
Each returns what happened, as a small dict recorded with the breach. Where a webhook may go is decided by
the outbound rules (gateway/security/outbound.py), on the URL and again on the addresses the connection
uses; redirects are never followed.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from gateway.security.outbound import OutboundRefused, OutboundResolver, OutboundRule

log = structlog.get_logger("gateway.alerts")

RETRY_STATUSES = frozenset({408, 425, 429})


class Alerter:
    def __init__(self, *, timeout: float, retries: int, backoff: float, smtp_host: str | None, smtp_port: int,
                 smtp_from: str, smtp_timeout: float, webhook_rule: OutboundRule | None = None) -> None:
        self._rule = webhook_rule or OutboundRule(named=[smtp_host])
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._smtp_host = smtp_host
        self._smtp_port = smtp_port
        self._smtp_from = smtp_from
        self._smtp_timeout = smtp_timeout
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Every connection resolves its host again and keeps only addresses the rules allow.
            connector = aiohttp.TCPConnector(resolver=OutboundResolver(self._rule), use_dns_cache=False)
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout),
                                                  connector=connector)
        return self._session

    async def webhook(self, url: str, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
        """POST the payload; retry connection errors, timeouts, 5xx, 408 and 429 with doubling backoff."""
        headers = {"X-Batchgate-Event": str(payload.get("event", "")), "X-Batchgate-Delivery": delivery,
                   "User-Agent": "batchgate"}
        bound = log.bind(url=urlsplit(url)._replace(query="", fragment="").geturl(), delivery=delivery)
        # Checked again at send time: the allowed hosts may have changed since the SLA was created.
        if (problem := self._rule.problem(url)) is not None:
            bound.warning("alert.webhook_not_allowed", problem=problem)
            return {"status": "refused", "error": problem, "attempts": 0}
        error = ""
        for attempt in range(1, self._retries + 2):
            try:
                async with self._client().post(url, json=payload, headers=headers, allow_redirects=False) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        bound.info("alert.webhook_delivered", status=resp.status, attempts=attempt)
                        return {"status": "delivered", "code": resp.status, "attempts": attempt}
                    error = f"HTTP {resp.status}"
                    if 300 <= resp.status < 400:  # never followed: the next hop was never checked
                        error += f": a redirect to {resp.headers.get('Location', '(none)')!r}, not followed"
                    if resp.status < 500 and resp.status not in RETRY_STATUSES:
                        bound.warning("alert.webhook_refused", status=resp.status)
                        return {"status": "failed", "error": error, "attempts": attempt}
            except (aiohttp.ClientError, TimeoutError) as exc:
                refused = getattr(exc, "os_error", None)
                if isinstance(refused, OutboundRefused):
                    bound.warning("alert.webhook_not_allowed", problem=str(refused))
                    return {"status": "refused", "error": str(refused), "attempts": attempt}
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt <= self._retries:
                delay = self._backoff * 2 ** (attempt - 1)
                bound.info("alert.webhook_retry", error=error, attempt=attempt, retry_in=delay)
                await asyncio.sleep(delay)
        bound.warning("alert.webhook_failed", error=error, attempts=self._retries + 1)
        return {"status": "failed", "error": error, "attempts": self._retries + 1}

    async def email(self, to: list[str], subject: str, body: str) -> dict[str, Any]:
        if not self._smtp_host:
            return {"status": "skipped", "error": "SMTP is not configured on this gateway (smtp_host)"}
        message = EmailMessage()
        message["From"] = self._smtp_from
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message.set_content(body)
        host, port, timeout = self._smtp_host, self._smtp_port, self._smtp_timeout

        def send() -> None:
            with smtplib.SMTP(host, port, timeout=timeout) as smtp:
                smtp.send_message(message)

        try:
            await asyncio.to_thread(send)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("alert.email_failed", error=str(exc), to=to)
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        log.info("alert.email_sent", to=to)
        return {"status": "sent", "to": to}
