"""Fire times with a frozen clock (croniter and zoneinfo, no sleeping): DST gaps and overlaps, Quartz
expressions, periods, catchup plans and the concurrency rule."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.batches.slaterms import batch_slas
from gateway.schedules.sla import format_duration, judge
from gateway.schedules.ticker import decide
from gateway.schedules.timing import Timing, TimingError, parse_duration, parse_every, plan_due
from gateway.security.outbound import OutboundRule
from gateway.store.schedules import Busy
from gateway.store.slas import Progress


def ms(text: str) -> int:
    """An ISO time with its offset, as epoch ms."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def local(values: list[int], zone: str) -> list[str]:
    return [datetime.fromtimestamp(v / 1000, ZoneInfo(zone)).isoformat() for v in values]


def cron(expr: str, zone: str = "UTC", **kw: int) -> Timing:
    return Timing(cron=expr, every=None, timezone=zone, anchor=0, **kw)


# --- DST -------------------------------------------------------------------------------------------


def test_berlin_gap_fires_once_at_the_end_of_the_gap() -> None:
    daily = cron("30 2 * * *", "Europe/Berlin")
    assert local(daily.upcoming(ms("2024-03-30T00:00:00+01:00"), 3), "Europe/Berlin") == [
        "2024-03-30T02:30:00+01:00", "2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"]
    # Every skipped time of the night (02:00, 02:30) and 03:00 itself are one fire at 03:00 CEST.
    half_hourly = cron("*/30 * * * *", "Europe/Berlin")
    assert local(half_hourly.upcoming(ms("2024-03-31T01:00:00+01:00"), 4), "Europe/Berlin") == [
        "2024-03-31T01:30:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T03:30:00+02:00",
        "2024-03-31T04:00:00+02:00"]


def test_berlin_overlap_fires_once_at_the_first_occurrence() -> None:
    half_hourly = cron("*/30 * * * *", "Europe/Berlin")
    fires = half_hourly.upcoming(ms("2024-10-27T01:00:00+02:00"), 5)
    assert local(fires, "Europe/Berlin") == [
        "2024-10-27T01:30:00+02:00", "2024-10-27T02:00:00+02:00", "2024-10-27T02:30:00+02:00",
        "2024-10-27T03:00:00+01:00", "2024-10-27T03:30:00+01:00"]
    # Asked during the second 02:xx (CET), the next fire is 03:00 CET: 02:30 does not fire again.
    assert local([half_hourly.next_after(ms("2024-10-27T02:10:00+01:00")) or 0], "Europe/Berlin") == [
        "2024-10-27T03:00:00+01:00"]
    assert local(half_hourly.latest(ms("2024-10-27T00:00:00+02:00"), ms("2024-10-27T02:40:00+01:00"), 3),
                 "Europe/Berlin") == ["2024-10-27T01:30:00+02:00", "2024-10-27T02:00:00+02:00",
                                      "2024-10-27T02:30:00+02:00"]
    daily = cron("30 2 * * *", "Europe/Berlin")
    assert local(daily.upcoming(ms("2024-10-26T12:00:00+02:00"), 2), "Europe/Berlin") == [
        "2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"]


def test_new_york_gap_and_overlap() -> None:
    zone = "America/New_York"
    daily = cron("30 2 * * *", zone)
    assert local(daily.upcoming(ms("2024-03-09T12:00:00-05:00"), 2), zone) == [
        "2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]
    hourly = cron("15 * * * *", zone)
    assert local(hourly.upcoming(ms("2024-11-03T00:00:00-04:00"), 3), zone) == [
        "2024-11-03T00:15:00-04:00", "2024-11-03T01:15:00-04:00", "2024-11-03T02:15:00-05:00"]
    # Seconds (Quartz) through the gap: 02:00:00 .. 02:59:59 all collapse into one fire at 03:00:00 EDT.
    every_20_min = cron("0 */20 * * * ?", zone)
    assert local(every_20_min.upcoming(ms("2024-03-10T01:30:00-05:00"), 3), zone) == [
        "2024-03-10T01:40:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T03:20:00-04:00"]


def test_calendar_periods_keep_wall_time_and_follow_the_dst_rule() -> None:
    anchor = ms("2024-03-29T02:30:00+01:00")
    daily = Timing(cron=None, every="1d", timezone="Europe/Berlin", anchor=anchor)
    assert local(daily.upcoming(anchor, 3), "Europe/Berlin") == [
        "2024-03-30T02:30:00+01:00", "2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"]
    monthly = Timing(cron=None, every="1M", timezone="Europe/Berlin", anchor=ms("2024-01-31T10:00:00+01:00"))
    assert local(monthly.upcoming(ms("2024-01-31T10:00:00+01:00"), 3), "Europe/Berlin") == [
        "2024-02-29T10:00:00+01:00", "2024-03-31T10:00:00+02:00", "2024-04-30T10:00:00+02:00"]
    weekly = Timing(cron=None, every="1w", timezone="Europe/Berlin", anchor=ms("2024-10-20T12:00:00+02:00"))
    assert local(weekly.upcoming(ms("2024-10-20T12:00:00+02:00"), 1), "Europe/Berlin") == [
        "2024-10-27T12:00:00+01:00"]


def test_elapsed_periods_know_no_dst() -> None:
    anchor = ms("2024-03-31T00:30:00+01:00")
    hourly = Timing(cron=None, every="1h", timezone="Europe/Berlin", anchor=anchor)
    fires = hourly.upcoming(anchor, 3)
    assert [b - a for a, b in zip([anchor, *fires], fires, strict=False)] == [3_600_000] * 3
    assert local(fires, "Europe/Berlin")[1] == "2024-03-31T03:30:00+02:00"
    assert hourly.last_at_or_before(anchor - 1) is None
    assert hourly.last_at_or_before(anchor + 5_400_000) == anchor + 3_600_000


# --- Quartz and croniter ---------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "expected"), [
    ("0 0 12 ? * MON-FRI", ["2024-03-01T12:00:00+00:00", "2024-03-04T12:00:00+00:00"]),
    ("0 0 12 ? * 2-6", ["2024-03-01T12:00:00+00:00", "2024-03-04T12:00:00+00:00"]),  # Quartz: 2 = Monday
    ("0 0 12 L * ?", ["2024-03-31T12:00:00+00:00", "2024-04-30T12:00:00+00:00"]),
    ("0 0 12 ? * 6L", ["2024-03-29T12:00:00+00:00", "2024-04-26T12:00:00+00:00"]),  # the last Friday
    ("0 0 12 ? * 6#3", ["2024-03-15T12:00:00+00:00", "2024-04-19T12:00:00+00:00"]),  # the third Friday
    ("0 0 12 ? * FRI#1", ["2024-03-01T12:00:00+00:00", "2024-04-05T12:00:00+00:00"]),
    ("0 0 12 15W * ?", ["2024-03-15T12:00:00+00:00", "2024-04-15T12:00:00+00:00"]),
    ("30 0 12 1 1 ? 2026", ["2026-01-01T12:00:30+00:00"]),
    ("*/15 * * * * ?", ["2024-03-01T00:00:15+00:00", "2024-03-01T00:00:30+00:00"]),
    ("0 12 * * 5", ["2024-03-01T12:00:00+00:00", "2024-03-08T12:00:00+00:00"]),  # classic cron: 5 = Friday
    ("0 12 1 * ?", ["2024-03-01T12:00:00+00:00", "2024-04-01T12:00:00+00:00"]),
    ("@daily", ["2024-03-02T00:00:00+00:00", "2024-03-03T00:00:00+00:00"]),
])
def test_quartz_and_cron_expressions(expr: str, expected: list[str]) -> None:
    timing = cron(expr)
    assert local(timing.upcoming(ms("2024-03-01T00:00:00+00:00"), len(expected)), "UTC") == expected


@pytest.mark.parametrize(("expr", "quoted"), [
    ("0 0 12 L-3 * ?", "'0 0 12 L-3 * ?' is not a valid cron expression"),
    ("0 0 12 LW * ?", "'0 0 12 LW * ?' is not a valid cron expression"),
    ("0 0 12 ? * 8", "'0 0 12 ? * 8': day of week '8'"),
    ("0 0 12 ? * 6#9", "'0 0 12 ? * 6#9': in '6#9' the week of the month must be 1 to 5"),
    ("61 * * * *", "'61 * * * *' is not a valid cron expression"),
    ("* * *", "'* * *' has 3 fields"),
    ("0 0 0 ? * * * *", "has 8 fields"),
    ("0 ? * * *", "'0 ? * * *' is not a valid cron expression"),
])
def test_bad_cron_quotes_the_expression(expr: str, quoted: str) -> None:
    with pytest.raises(TimingError) as info:
        cron(expr)
    assert info.value.field == "cron" and quoted in info.value.message


def test_a_cron_that_never_fires_has_no_next() -> None:
    assert cron("0 0 30 2 *").next_after(ms("2024-01-01T00:00:00+00:00")) is None


def test_bounds() -> None:
    timing = cron("0 * * * *", start_at=ms("2024-03-01T05:30:00+00:00"), end_at=ms("2024-03-01T08:00:00+00:00"))
    assert local(timing.upcoming(0, 10), "UTC") == ["2024-03-01T06:00:00+00:00", "2024-03-01T07:00:00+00:00",
                                                     "2024-03-01T08:00:00+00:00"]
    assert timing.last_at_or_before(ms("2024-03-02T00:00:00+00:00")) == ms("2024-03-01T08:00:00+00:00")
    with pytest.raises(TimingError, match="endAt"):
        cron("0 * * * *", start_at=5, end_at=4)


def test_periods_zones_and_durations() -> None:
    assert parse_every("30s").millis == 30_000 and parse_every("1M").calendar
    for bad in ("30", "1y", "0m", "m", "1.5h", "-1h"):
        with pytest.raises(TimingError, match="every"):
            parse_every(bad)
    assert parse_duration("1h30m") == 5_400_000 and parse_duration("2d") == 172_800_000
    for bad in ("", "1M", "abc", "0s", "10x", "1h 30m", "400d"):
        with pytest.raises(TimingError, match="duration"):
            parse_duration(bad)
    assert format_duration(5_400_000) == "1h30m" and format_duration(604_800_000) == "1w"
    for zone in ("Mars/Olympus", "../etc/passwd", "", "Europe/Berlin "):
        with pytest.raises(TimingError) as info:
            Timing(cron="* * * * *", every=None, timezone=zone, anchor=0)
        assert info.value.field == "timezone" and repr(zone) in info.value.message


# --- catchup plans ---------------------------------------------------------------------------------


def test_plan_fires_the_due_tick_on_time() -> None:
    every = Timing(cron=None, every="1s", timezone="UTC", anchor=0)
    plan = plan_due(every, 10_000, 10_200, catchup="NONE", bound=5, misfire_ms=1000)
    assert plan.fire == [10_000] and plan.skipped == [] and plan.skipped_count == 0


@pytest.mark.parametrize(("catchup", "fired_missed", "skipped"), [
    ("NONE", [], 6), ("LAST", [15_000], 5), ("ALL", [13_000, 14_000, 15_000], 3),
])
def test_plan_after_downtime(catchup: str, fired_missed: list[int], skipped: int) -> None:
    every = Timing(cron=None, every="1s", timezone="UTC", anchor=0)
    # Down from 9.5 s to 17.2 s: ticks 10..15 are missed (older than the 1 s grace), 16 and 17 are on time.
    plan = plan_due(every, 10_000, 17_200, catchup=catchup, bound=3, misfire_ms=1500)
    assert plan.fire == [*fired_missed, 16_000, 17_000]
    assert plan.skipped_count == skipped and len(plan.skipped) == skipped
    assert sorted(plan.skipped + plan.fire) == list(range(10_000, 18_000, 1000))


def test_plan_of_a_long_outage_is_bounded() -> None:
    every = Timing(cron=None, every="1s", timezone="UTC", anchor=0)
    plan = plan_due(every, 0, 86_400_000, catchup="ALL", bound=10, misfire_ms=1000)
    # 10 missed ones (the bound), and the two within the grace (86 399 s and 86 400 s), which are on time.
    assert len(plan.fire) == 12 and len(plan.skipped) == 100 and plan.skipped_count == 86_399 - 10
    minutely = cron("* * * * *")
    plan = plan_due(minutely, 0, 30 * 86_400_000, catchup="LAST", bound=10, misfire_ms=1000)
    assert plan.fire == [30 * 86_400_000 - 60_000, 30 * 86_400_000]  # the last missed one, and the due one
    assert plan.skipped_count == 1000  # a cron's missed ticks are counted up to the cap


# --- the concurrency rule --------------------------------------------------------------------------


def test_decide() -> None:
    idle, running = Busy(None, False, 0), Busy(uuid.uuid4(), False, 0)
    assert [d.outcome for d in decide([1, 2, 3], "SKIP", idle, 10, "j")] == ["PENDING", "SKIPPED", "SKIPPED"]
    skipped = decide([1], "SKIP", running, 10, "j")[0]
    assert skipped.outcome == "SKIPPED" and str(running.run_id) in (skipped.reason or "")
    assert [d.outcome for d in decide([1, 2, 3], "QUEUE", idle, 10, "j")] == ["PENDING", "QUEUED", "QUEUED"]
    assert [d.outcome for d in decide([1, 2], "QUEUE", Busy(None, False, 1), 10, "j")] == ["QUEUED", "QUEUED"]
    assert [d.outcome for d in decide([1, 2, 3], "QUEUE", running, 2, "j")] == ["QUEUED", "QUEUED", "SKIPPED"]
    assert [d.outcome for d in decide([1, 2], "ALLOW", running, 10, "j")] == ["PENDING", "PENDING"]
    assert [d.outcome for d in decide([1], "SKIP", Busy(None, True, 0), 10, "j")] == ["SKIPPED"]


# --- SLA judgement and batch conf ------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "progress", "outcome"), [
    ("START_WITHIN", Progress(True, started_at=900), "MET"),
    ("START_WITHIN", Progress(True, started_at=1100), "BREACHED"),
    ("START_WITHIN", Progress(True, ended_at=950), "MET"),
    ("START_WITHIN", Progress(True), "BREACHED"),
    ("FINISH_WITHIN", Progress(True, started_at=10, ended_at=1000), "MET"),
    ("FINISH_WITHIN", Progress(True, started_at=10, ended_at=1001), "BREACHED"),
    ("SUCCEED_WITHIN", Progress(True, 10, 999, succeeded=False), "BREACHED"),
    ("SUCCEED_WITHIN", Progress(True, 10, 999, succeeded=True), "MET"),
    ("FINISH_WITHIN", Progress(False), "GONE"),
    ("START_WITHIN", Progress(True, skipped=True), "GONE"),
])
def test_judge(rule: str, progress: Progress, outcome: str) -> None:
    assert judge(rule, 1000, progress) == outcome


def test_batch_conf() -> None:
    batch = uuid.uuid4()
    assert batch_slas(batch, {"spark.x": "1"}, OutboundRule()) == ()
    [sla] = batch_slas(batch, {"batchgate.sla.finishWithin": "30m", "batchgate.sla.action": "kill"}, OutboundRule())
    assert sla.rule == "FINISH_WITHIN" and sla.duration_ms == 1_800_000 and sla.actions == ["KILL"]
    assert sla.id == uuid.uuid5(batch, "FINISH_WITHIN")  # the same batch submitted twice: the same SLA
    from gateway.errors import BadRequest

    for conf, field in [({"batchgate.sla.finishWithin": "soon"}, "conf.batchgate.sla.finishWithin"),
                        ({"batchgate.sla.finishwithin": "1m"}, "conf.batchgate.sla.finishwithin: unknown"),
                        ({"batchgate.sla.action": "KILL"}, "needs a rule"),
                        ({"batchgate.sla.startWithin": "1m", "batchgate.sla.action": "PAGE"},
                         "conf.batchgate.sla.action"),
                        ({"batchgate.sla.startWithin": "1m", "batchgate.sla.webhook": "ftp://x"},
                         "conf.batchgate.sla.webhook")]:
        with pytest.raises(BadRequest) as info:
            batch_slas(batch, conf, OutboundRule())
        assert field in info.value.message


def test_webhook_hosts() -> None:
    anywhere, listed = OutboundRule(), OutboundRule(["hooks.example.com", "*.corp.example"])
    assert anywhere.problem("http://169.254.169.254/latest") is not None, "not public: only by name"
    assert anywhere.problem("https://hooks.example.com/x") is None
    assert listed.problem("https://hooks.example.com/x") is None
    assert listed.problem("https://HOOKS.example.com./x") is None
    assert listed.problem("https://a.b.corp.example/x") is None
    for url in ("http://169.254.169.254/latest", "https://corp.example/x", "https://evil.hooks.example.com/x",
                "https://hooks.example.com.evil.test/x", "https://xcorp.example/x"):
        problem = listed.problem(url, "conf.batchgate.sla.webhook")
        assert problem is not None and "conf.batchgate.sla.webhook: host" in problem, url
    assert "not an http(s) URL" in (listed.problem("ftp://hooks.example.com/x") or "")
