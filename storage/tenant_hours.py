"""A company's own hours and notification rules: support hours per weekday, holidays, quiet hours, reminder days.

Columns of `tenants` and rows of `tenant_holidays` (migration 0016). Each value
may be left unset (NULL), and then what applied before still applies: the
support hours its logistics core gives, the deployment's QUIET_HOURS_START/_END
and REMINDER_DAYS. Holidays close support on their day whatever the weekly
hours say. The company's admin edits them in the console ("Horario"); the
workers read them through `runtime.tenant_rules` (cached until tenants change).

Every write is scoped to its tenant, validated (`HoursError` says what is wrong
in the admin's words) and then announced (`storage.tenant_changes`).
Failure policy: database errors raise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import redis
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from storage import tenant_changes

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # the logistics core's day keys
HOLIDAY_NAME_MAX = 80
REMINDER_DAYS_MAX = 5
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

# One weekday's support: (opens, closes) as "HH:MM", or None when closed.
Span = tuple[str, str] | None


class HoursError(ValueError):
    """A refused change; the message is for the company's admin (Spanish)."""


@dataclass(frozen=True)
class Holiday:
    id: int
    day: date
    name: str


@dataclass(frozen=True)
class Schedule:
    """What a company set for itself; None (or empty) where it follows the core or the deployment."""

    tenant_id: int
    support_hours: dict[str, Span] | None = None  # every weekday key; None: the core's hours
    holidays: tuple[Holiday, ...] = ()
    quiet_hours: tuple[str, str] | None = None  # (start, end); None: the deployment's
    reminder_days: tuple[int, ...] | None = None  # None: the deployment's

    @property
    def closed_days(self) -> frozenset[date]:
        return frozenset(h.day for h in self.holidays)


def read(pool: ConnectionPool, tenant_id: int) -> Schedule:
    """The tenant's schedule in one statement (an unknown tenant: nothing set)."""
    with pool.connection() as conn:
        row: Any = conn.execute(
            "SELECT t.support_hours, t.quiet_hours_start, t.quiet_hours_end, t.reminder_days,"
            " COALESCE((SELECT json_agg(json_build_object('id', h.id, 'day', h.day, 'name', h.name) ORDER BY h.day)"
            "           FROM tenant_holidays h WHERE h.tenant_id = t.id), '[]') AS holidays"
            " FROM tenants t WHERE t.id = %s",
            (tenant_id,),
        ).fetchone()
    if row is None:
        return Schedule(tenant_id)
    hours = row["support_hours"]
    return Schedule(
        tenant_id=tenant_id,
        support_hours={day: _span(hours.get(day)) for day in WEEKDAYS} if hours is not None else None,
        holidays=tuple(Holiday(int(h["id"]), date.fromisoformat(h["day"]), str(h["name"])) for h in row["holidays"]),
        quiet_hours=(row["quiet_hours_start"], row["quiet_hours_end"]) if row["quiet_hours_start"] else None,
        reminder_days=tuple(row["reminder_days"]) if row["reminder_days"] is not None else None,
    )


def _span(raw: Any) -> Span:
    return (str(raw[0]), str(raw[1])) if raw else None


def validate_hours(hours: Mapping[str, Span]) -> dict[str, Span]:
    """Every weekday, each open one closing after it opens; raises HoursError naming the day."""
    names = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
    clean: dict[str, Span] = {}
    for key, name in zip(WEEKDAYS, names, strict=True):
        span = hours.get(key)
        if span is None:
            clean[key] = None
            continue
        opens, closes = (span[0] or "").strip(), (span[1] or "").strip()
        if not opens or not closes:
            raise HoursError(f"El {name} necesita la hora de apertura y la de cierre (o márcalo como cerrado).")
        if not _CLOCK.match(opens) or not _CLOCK.match(closes):
            raise HoursError(f"Revisa las horas del {name}: escríbelas como 08:00 o 17:30.")
        if closes <= opens:
            raise HoursError(f"El {name} la hora de cierre tiene que ser después de la de apertura.")
        clean[key] = (opens, closes)
    if all(span is None for span in clean.values()):
        raise HoursError("Deja al menos un día abierto. Si quieres volver al horario del sistema, usa "
                         "«Usar el horario del sistema».")
    return clean


def set_support_hours(pool: ConnectionPool, redis_conn: redis.Redis | None, tenant_id: int,
                      hours: Mapping[str, Span] | None) -> None:
    """The company's own weekly support hours (validated), or None to follow its core's again."""
    value = Jsonb({k: list(v) if v else None for k, v in validate_hours(hours).items()}) if hours is not None else None
    with pool.connection() as conn:
        conn.execute("UPDATE tenants SET support_hours = %s, updated_at = now() WHERE id = %s", (value, tenant_id))
    tenant_changes.announce(redis_conn)


def add_holiday(pool: ConnectionPool, redis_conn: redis.Redis | None, tenant_id: int, day: date | None,
                name: str) -> None:
    """A day support is closed; one per date (the same date again renames it)."""
    name = " ".join(name.split())
    if day is None:
        raise HoursError("Elige la fecha del feriado.")
    if not name:
        raise HoursError("Escribe el nombre del feriado, por ejemplo «Día del Trabajo».")
    if len(name) > HOLIDAY_NAME_MAX:
        raise HoursError(f"El nombre del feriado puede tener hasta {HOLIDAY_NAME_MAX} letras.")
    with pool.connection() as conn:
        conn.execute("INSERT INTO tenant_holidays (tenant_id, day, name) VALUES (%s, %s, %s)"
                     " ON CONFLICT (tenant_id, day) DO UPDATE SET name = EXCLUDED.name", (tenant_id, day, name))
    tenant_changes.announce(redis_conn)


def remove_holiday(pool: ConnectionPool, redis_conn: redis.Redis | None, tenant_id: int, holiday_id: int) -> bool:
    """False when the tenant has no such holiday (another company's id included)."""
    with pool.connection() as conn:
        removed = conn.execute("DELETE FROM tenant_holidays WHERE id = %s AND tenant_id = %s",
                               (holiday_id, tenant_id)).rowcount
    if removed:
        tenant_changes.announce(redis_conn)
    return bool(removed)


def set_notification_rules(pool: ConnectionPool, redis_conn: redis.Redis | None, tenant_id: int, *,
                           quiet_hours: tuple[str, str] | None, reminder_days: Sequence[int] | None,
                           unclaimed_days: int) -> None:
    """Quiet hours (start, end; equal: none) and reminder days; None for either: the deployment's.

    Reminder days go from 1 to `unclaimed_days` - 1 (a package goes back on that day).
    """
    if quiet_hours is not None:
        start, end = (quiet_hours[0] or "").strip(), (quiet_hours[1] or "").strip()
        if not _CLOCK.match(start) or not _CLOCK.match(end):
            raise HoursError("Escribe el inicio y el fin de las horas de silencio, por ejemplo 21:00 y 07:00.")
        quiet_hours = (start, end)
    days: list[int] | None = None
    if reminder_days is not None:
        days = sorted(set(reminder_days))
        if not days:
            raise HoursError("Escribe al menos un día de recordatorio, por ejemplo 3, 7 y 14.")
        if len(days) > REMINDER_DAYS_MAX:
            raise HoursError(f"Puedes poner hasta {REMINDER_DAYS_MAX} días de recordatorio.")
        if any(not 1 <= d < unclaimed_days for d in days):
            raise HoursError(f"Los recordatorios van del día 1 al {unclaimed_days - 1}: el día {unclaimed_days} "
                             "el paquete regresa al remitente.")
    with pool.connection() as conn:
        conn.execute("UPDATE tenants SET quiet_hours_start = %s, quiet_hours_end = %s, reminder_days = %s,"
                     " updated_at = now() WHERE id = %s",
                     (quiet_hours[0] if quiet_hours else None, quiet_hours[1] if quiet_hours else None, days,
                      tenant_id))
    tenant_changes.announce(redis_conn)


def own_reminder_days(pool: ConnectionPool) -> dict[int, tuple[int, ...]]:
    """Tenant id -> its reminder days, for the companies that set their own (the scheduler asks once a pass)."""
    with pool.connection() as conn:
        found: list[Any] = conn.execute(
            "SELECT id, reminder_days FROM tenants WHERE reminder_days IS NOT NULL ORDER BY id").fetchall()
    return {int(r["id"]): tuple(r["reminder_days"]) for r in found if r["reminder_days"]}
