"""SLA terms in a batch's conf (`batchgate.sla.finishWithin=30m`, ...): checked by the admission step and
written with the batch, in its transaction. docs/schedules.md describes the keys."""

from __future__ import annotations

import uuid

from gateway.contract.schedules import EMAIL, Action, Rule
from gateway.errors import BadRequest
from gateway.schedules.timing import TimingError, parse_duration
from gateway.security.outbound import OutboundRule
from gateway.store.records import BatchSla

CONF_PREFIX = "batchgate.sla."
CONF_RULES = {"startWithin": Rule.START_WITHIN, "finishWithin": Rule.FINISH_WITHIN,
              "succeedWithin": Rule.SUCCEED_WITHIN}
CONF_OTHER = ("action", "webhook", "emails")


def batch_slas(batch_id: uuid.UUID, conf: dict[str, str], webhooks: OutboundRule) -> tuple[BatchSla, ...]:
    """The SLAs a batch asks for in its conf; a 400 names the bad key. Their ids derive from the batch id,
    so a repeated submit of the same batch (kyuubi.batch.id) registers nothing new."""
    keys = {k.removeprefix(CONF_PREFIX): v for k, v in conf.items() if k.startswith(CONF_PREFIX)}
    if not keys:
        return ()
    for key in keys:
        if key not in CONF_RULES and key not in CONF_OTHER:
            raise BadRequest(f"conf.{CONF_PREFIX}{key}: unknown; known: "
                             f"{', '.join(CONF_PREFIX + k for k in (*CONF_RULES, *CONF_OTHER))}")
    rules = {k: v for k, v in keys.items() if k in CONF_RULES}
    if not rules:
        raise BadRequest(f"conf.{CONF_PREFIX}{next(iter(keys))}: needs a rule too: "
                         f"{', '.join(CONF_PREFIX + k for k in CONF_RULES)}")
    actions = [a.strip().upper() for a in keys.get("action", "ALERT").split(",") if a.strip()]
    bad = [a for a in actions if a not in Action.__members__]
    if bad or not actions:
        raise BadRequest(f"conf.{CONF_PREFIX}action: {keys.get('action')!r}; use ALERT, KILL or ALERT,KILL")
    webhook = keys.get("webhook") or None
    if webhook and (problem := webhooks.problem(webhook, f"conf.{CONF_PREFIX}webhook")):
        raise BadRequest(problem)
    emails = [e.strip() for e in keys.get("emails", "").split(",") if e.strip()]
    for address in emails:
        if not EMAIL.match(address):
            raise BadRequest(f"conf.{CONF_PREFIX}emails: {address!r} is not an e-mail address")
    out: list[BatchSla] = []
    for key, text in rules.items():
        try:
            duration = parse_duration(text, f"conf.{CONF_PREFIX}{key}")
        except TimingError as exc:
            raise BadRequest(exc.message) from None
        rule = CONF_RULES[key].value
        out.append(BatchSla(id=uuid.uuid5(batch_id, rule), rule=rule, duration_ms=duration,
                            actions=sorted(set(actions)), webhook=webhook, emails=emails))
    return tuple(out)

