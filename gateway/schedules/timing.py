"""Fire times: pure functions of a schedule's timing and a point in time (croniter and zoneinfo).

Every fire-time computation of the gateway goes through `Timing`. Times are epoch milliseconds.

The DST rule (docs/schedules.md): cron expressions and calendar periods (`d`, `w`, `M`) name local
wall-clock times in the schedule's zone.
- A local time that a DST gap skips fires once, at the first instant after the gap (02:30 on the
  spring-forward night in Europe/Berlin fires at 03:00 CEST). Several skipped times collapse into
  that one fire.
- A local time that a DST overlap repeats fires once, at its first occurrence (02:30 on the
  fall-back night fires at 02:30 CEST, not again at 02:30 CET).
Periods in seconds, minutes and hours (`30s`, `15m`, `1h`) are elapsed time and know no DST.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

SECOND = 1000
ELAPSED_UNITS = {"s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}
DURATION_UNITS = {**ELAPSED_UNITS, "d": 86400 * SECOND, "w": 7 * 86400 * SECOND}
CALENDAR_UNITS = ("d", "w", "M")
MAX_EVERY_COUNT = 1_000_000
MAX_STEPS = 200_000  # croniter steps for one answer: a per-second expression across a repeated hour is 3600
_PERIOD = re.compile(r"^(\d{1,7})([smhdwM])$")
_DURATION_PART = re.compile(r"(\d{1,9})([smhdw])")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


class TimingError(ValueError):
    """A bad cron expression, period, duration or zone. `field` names the input that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = f"{field}: {message}"


# --- parsing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    count: int
    unit: str  # s, m, h (elapsed) or d, w, M (calendar, in local time)

    @property
    def calendar(self) -> bool:
        return self.unit in CALENDAR_UNITS

    @property
    def millis(self) -> int:
        return self.count * ELAPSED_UNITS[self.unit]


def parse_every(text: str, field: str = "every") -> Period:
    match = _PERIOD.match(text.strip())
    if not match:
        raise TimingError(field, f"{text!r} is not a period; use a number and one of s, m, h, d, w, M "
                                 "(30s, 15m, 1h, 1d, 1w, 1M)")
    count = int(match.group(1))
    if not 1 <= count <= MAX_EVERY_COUNT:
        raise TimingError(field, f"{text!r}: the count must be between 1 and {MAX_EVERY_COUNT}")
    return Period(count, match.group(2))


def parse_duration(text: str, field: str = "duration") -> int:
    """`30s`, `15m`, `1h30m`, `2d`, `1w` -> milliseconds (elapsed time)."""
    compact = text.strip()
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise TimingError(field, f"{text!r} is not a duration; use numbers with s, m, h, d or w (30s, 15m, 1h30m)")
    total = sum(int(n) * DURATION_UNITS[u] for n, u in parts)
    if total <= 0:
        raise TimingError(field, f"{text!r}: a duration must be longer than zero")
    if total > 366 * DURATION_UNITS["d"]:
        raise TimingError(field, f"{text!r}: a duration must be at most a year")
    return total


def parse_zone(name: str, field: str = "timezone") -> ZoneInfo:
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise TimingError(field, f"{name!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimingError(field, f"{name!r} is not an IANA time zone name (like Europe/Berlin or UTC)") from None


def _quartz_day(value: str, expr: str) -> int:
    """A Quartz day of week (1 = Sunday ... 7 = Saturday, or a name) as croniter's number (0 = Sunday)."""
    if value.upper() in DAY_NAMES:
        return DAY_NAMES.index(value.upper())
    if value.isdigit() and 1 <= int(value) <= 7:
        return int(value) - 1
    raise TimingError("cron", f"{expr!r}: day of week {value!r} is neither 1 (Sunday) to 7 (Saturday) nor "
                              "SUN to SAT")


def _quartz_dow(token: str, expr: str) -> str:
    """One comma-separated part of a Quartz day-of-week field, in croniter's numbering."""
    if token in ("*", "?"):
        return token
    if token.upper() == "L":
        return "6"  # Quartz: L alone in day-of-week is the last day of the week, Saturday
    if "#" in token:
        day, _, nth = token.partition("#")
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise TimingError("cron", f"{expr!r}: in {token!r} the week of the month must be 1 to 5")
        return f"{_quartz_day(day, expr)}#{nth}"
    if len(token) > 1 and token.upper().endswith("L"):
        return f"L{_quartz_day(token[:-1], expr)}"  # 6L: the last Friday of the month
    span, slash, step = token.partition("/")
    if slash and not step.isdigit():
        raise TimingError("cron", f"{expr!r}: in {token!r} the step must be a number")
    if span == "*":
        days = "*"
    else:
        first, dash, last = span.partition("-")
        days = str(_quartz_day(first, expr)) + (f"-{_quartz_day(last, expr)}" if dash else "")
    return days + (f"/{step}" if slash else "")


def normalize_cron(expr: str) -> tuple[str, bool]:
    """A cron expression as croniter reads it, and whether seconds come first (Quartz).

    Five fields are classic cron. Six or seven are Quartz: seconds first, an optional year last,
    `?` for "no specific value", and day-of-week numbers 1 (Sunday) to 7 (Saturday).
    """
    text = " ".join(expr.split())
    if not text:
        raise TimingError("cron", "an empty expression")
    if text.startswith("@"):
        return text, False
    fields = text.split(" ")
    if len(fields) == 5:
        return text, False
    if len(fields) not in (6, 7):
        raise TimingError("cron", f"{expr!r} has {len(fields)} fields; use 5 (minute hour day month weekday), "
                                  "or Quartz's 6 or 7 (second minute hour day month weekday [year])")
    dow = ",".join(_quartz_dow(part, expr) for part in fields[5].split(","))
    fields[5] = dow
    return " ".join(fields), True


# --- local time and instants ------------------------------------------------------------------------


def to_local(ms: int, zone: ZoneInfo) -> datetime:
    """The wall-clock time (naive, whole seconds) of an instant in a zone."""
    return datetime.fromtimestamp(ms // SECOND, zone).replace(tzinfo=None)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * SECOND


def to_instant(local: datetime, zone: ZoneInfo) -> int:
    """The instant a wall-clock time fires at, by the DST rule (see the module docstring)."""
    first = local.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == local:
        return _ms(utc)  # it exists; when it exists twice, fold=0 is its first occurrence
    # Skipped by a gap: the first instant after it, where the offset changes.
    a = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    b = utc
    lo, hi = (a, b) if a <= b else (b, a)
    before = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return _ms(hi)


def _add_months(local: datetime, months: int) -> datetime:
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


# --- timings ----------------------------------------------------------------------------------------


class Timing:
    """When a schedule fires: a cron expression or a period, in a zone, between optional bounds.

    `anchor` is where a period counts from: its first fire is at the anchor.
    """

    def __init__(self, *, cron: str | None, every: str | None, timezone: str, anchor: int,
                 start_at: int | None = None, end_at: int | None = None) -> None:
        if (cron is None) == (every is None):
            raise TimingError("cron", "give either cron or every, not both and not neither")
        self.zone = parse_zone(timezone)
        self.cron = cron
        self.every = every
        self.anchor = anchor
        self.start_at = start_at
        self.end_at = end_at
        if start_at is not None and end_at is not None and end_at < start_at:
            raise TimingError("endAt", "must not be before startAt")
        self._period: Period | None = None
        self._expr = ""
        self._seconds_first = False
        if every is not None:
            self._period = parse_every(every)
        else:
            assert cron is not None
            self._expr, self._seconds_first = normalize_cron(cron)
            try:
                croniter(self._expr, datetime(2000, 1, 1), ret_type=datetime,
                         second_at_beginning=self._seconds_first)
            except (CroniterError, ValueError, KeyError, IndexError) as exc:
                raise TimingError("cron", f"{cron!r} is not a valid cron expression: {_reason(exc)}") from None

    # --- the raw sequence, without bounds --------------------------------------------------------

    def _iter(self, local: datetime) -> croniter[datetime]:
        return croniter(self._expr, local, ret_type=datetime, second_at_beginning=self._seconds_first)

    def _cron_next(self, t: int) -> int | None:
        try:
            it = self._iter(to_local(t, self.zone))
            for _ in range(MAX_STEPS):
                fire = to_instant(it.get_next(datetime), self.zone)
                if fire > t:
                    return fire
        except CroniterError:
            return None  # nothing within croniter's search horizon (50 years)
        return None

    def _cron_prev(self, t: int) -> int | None:
        try:
            it = self._iter(to_local(t, self.zone) + timedelta(seconds=1))
            for _ in range(MAX_STEPS):
                fire = to_instant(it.get_prev(datetime), self.zone)
                if fire <= t:
                    return fire
        except CroniterError:
            return None
        return None

    def _period_fire(self, k: int) -> int:
        period = self._period
        assert period is not None
        if not period.calendar:
            return self.anchor + k * period.millis
        local = to_local(self.anchor, self.zone)
        if period.unit == "M":
            return to_instant(_add_months(local, k * period.count), self.zone) + self.anchor % SECOND
        days = period.count * (7 if period.unit == "w" else 1)
        return to_instant(local + timedelta(days=k * days), self.zone) + self.anchor % SECOND

    def _period_index(self, t: int) -> int:
        """A k with fire(k) <= t, close below the last such k (t >= anchor)."""
        period = self._period
        assert period is not None
        if not period.calendar:
            return (t - self.anchor) // period.millis
        if period.unit == "M":
            a, b = to_local(self.anchor, self.zone), to_local(t, self.zone)
            return max(((b.year - a.year) * 12 + b.month - a.month) // period.count - 1, 0)
        days = period.count * (7 if period.unit == "w" else 1)
        return max((t - self.anchor) // (days * DURATION_UNITS["d"]) - 1, 0)

    def _period_next(self, t: int) -> int:
        if t < self.anchor:
            return self.anchor
        k = self._period_index(t)
        while self._period_fire(k) <= t:
            k += 1
        return self._period_fire(k)

    def _period_prev(self, t: int) -> int | None:
        if t < self.anchor:
            return None
        k = self._period_index(t)
        while self._period_fire(k + 1) <= t:
            k += 1
        return self._period_fire(k)

    # --- within the bounds -----------------------------------------------------------------------

    def next_after(self, t: int) -> int | None:
        """The first fire time strictly after t, or None when the schedule has none left."""
        if self.start_at is not None:
            t = max(t, self.start_at - 1)
        fire = self._period_next(t) if self._period is not None else self._cron_next(t)
        if fire is None or (self.end_at is not None and fire > self.end_at):
            return None
        return fire

    def last_at_or_before(self, t: int) -> int | None:
        """The last fire time at or before t, or None."""
        if self.end_at is not None:
            t = min(t, self.end_at)
        fire = self._period_prev(t) if self._period is not None else self._cron_prev(t)
        if fire is None or (self.start_at is not None and fire < self.start_at):
            return None
        return fire

    def upcoming(self, after: int, n: int) -> list[int]:
        """The next n fire times strictly after `after`."""
        out: list[int] = []
        t = after
        while len(out) < n:
            fire = self.next_after(t)
            if fire is None:
                break
            out.append(fire)
            t = fire
        return out

    def latest(self, lo: int, hi: int, n: int) -> list[int]:
        """Up to n of the latest fire times in [lo, hi], oldest first."""
        out: list[int] = []
        t = hi
        while len(out) < n:
            fire = self.last_at_or_before(t)
            if fire is None or fire < lo:
                break
            out.append(fire)
            t = fire - 1
        return out[::-1]

    def count_between(self, lo: int, hi: int, cap: int) -> int:
        """How many fire times lie in [lo, hi]: exact for elapsed periods, else counted up to `cap`."""
        if self._period is not None and not self._period.calendar and self.start_at is None and self.end_at is None:
            first = self._period_next(lo - 1)
            return 0 if first > hi else (hi - first) // self._period.millis + 1
        count = 0
        t = lo - 1
        while count < cap:
            fire = self.next_after(t)
            if fire is None or fire > hi:
                break
            count += 1
            t = fire
        return count


def _reason(exc: BaseException) -> str:
    """croniter's message without its rewritten copy of the expression ("[0 12 ? * 5l 0] is ...")."""
    text = str(exc) or type(exc).__name__
    return re.sub(r"^\[[^\]]*\]\s*", "", text)


# --- what is due -----------------------------------------------------------------------------------

MISSED_LISTED = 100  # skipped missed ticks get a row each, up to this many (the latest); the rest are counted
COUNT_CAP = 1000


@dataclass(frozen=True)
class DuePlan:
    """The ticks due at `now`: which to fire (oldest first), and which were missed and are skipped."""

    fire: list[int]
    skipped: list[int]  # the latest skipped missed ticks, oldest first (at most MISSED_LISTED)
    skipped_count: int  # all of them (a cron's are counted up to COUNT_CAP)
    caught: list[int] = field(default_factory=list)  # missed ticks fired by the catchup rule


def plan_due(timing: Timing, next_fire: int, now: int, *, catchup: str, bound: int, misfire_ms: int,
             on_time_limit: int = 100) -> DuePlan:
    """Ticks in [next_fire, now]. Those within `misfire_ms` of now are on time and always fire. Older ones
    were missed (no instance was running): NONE skips them all, LAST fires the latest of them, ALL fires the
    latest `bound` of them; the rest are skipped."""
    on_time = timing.latest(max(next_fire, now - misfire_ms), now, on_time_limit)
    missed_hi = on_time[0] - 1 if on_time else now
    if missed_hi < next_fire:
        return DuePlan(on_time, [], 0)
    keep = {"NONE": 0, "LAST": 1, "ALL": bound}[catchup]
    caught = timing.latest(next_fire, missed_hi, keep) if keep else []
    skipped_hi = caught[0] - 1 if caught else missed_hi
    skipped = timing.latest(next_fire, skipped_hi, MISSED_LISTED) if skipped_hi >= next_fire else []
    count = timing.count_between(next_fire, skipped_hi, COUNT_CAP) if skipped else 0
    return DuePlan(caught + on_time, skipped, count, caught)
