"""Quiet hours: no proactive message at night in the company's time zone (default 21:00–07:00).

A notification that falls inside them is deferred to their end, never dropped.
Each company may set its own (its admin, in the console: `storage.tenant_hours`);
otherwise the deployment's QUIET_HOURS_START/_END apply.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from runtime.resources import Runtime


def _clock(value: str) -> time:
    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes))


def release_time(now: datetime, timezone: str, start: str, end: str) -> datetime | None:
    """When a message due at `now` (aware) may go: None when now is outside quiet hours, else their end.

    `start`/`end` are "HH:MM" company time; equal values mean no quiet hours. The
    span may cross midnight (21:00–07:00) or not (13:00–14:00).
    """
    begin, finish = _clock(start), _clock(end)
    if begin == finish:
        return None
    local = now.astimezone(ZoneInfo(timezone))
    clock = local.time().replace(tzinfo=None)
    crosses_midnight = begin > finish
    inside = (clock >= begin or clock < finish) if crosses_midnight else (begin <= clock < finish)
    if not inside:
        return None
    release = local.replace(hour=finish.hour, minute=finish.minute, second=0, microsecond=0)
    if release <= local:
        release += timedelta(days=1)
    return release


def quiet_hours_of(rt: Runtime, tenant_id: int) -> tuple[str, str]:
    """(start, end) of the company's quiet hours: its own when set, else the deployment's (from memory)."""
    own = rt.rules.schedule(tenant_id).quiet_hours
    return own if own is not None else (rt.settings.quiet_hours_start, rt.settings.quiet_hours_end)
