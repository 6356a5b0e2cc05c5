"""WhatsApp's messaging limit on proactive sends: who may get a template now, who waits, in what order.

Meta lets a business portfolio send templates outside the 24-hour service window to at most its tier's number
of unique customers (250, 2,000, 10,000, 100,000 or unlimited) in any rolling 24 hours, shared by its numbers
(CONTRACT §2.5). The tier is per company and business account (`storage.messaging_limits`; the deployment's
MESSAGING_LIMIT_TIER when none is recorded).

The count: a Redis sorted set per (company, account) of the customers reached (contact id -> the last time a
template went to them outside their window). One Lua script trims what left the 24 hours and admits a customer
atomically, so concurrent workers on any host never admit more than the tier (why Redis and not a query over
`notification_log`: the admission must be atomic across workers, and a count of up to 100,000 rows per send
under a lock would cost more than the send). A customer already in the set costs nothing more (the time is
moved forward, as Meta's moving window does); a customer whose service window is open gets the free-form
message and is never counted. A slot is taken before the provider is called and kept even if the send then
fails (over-counting is the safe side). When the set is missing (Redis lost its data) it is rebuilt from the
templates `notification_log` recorded as sent in the last 24 hours before anyone is admitted.

Priority (`notifications.decision.PRIORITY`: pickup-ready and refund first, in-transit last) when a burst
does not fit: a notification about to take a slot first checks whether what is waiting for the company
(unprocessed core events, waiting notifications) would go past what is left of the tier. If it would, the
account is "gated": this notification and every new one is held (`ledger.hold`, reason 'messaging_limit',
shown to the admin), and the scheduler's pass (`release_pass`) lets the held ones go in priority order, as
many as the tier has room for, once the burst has been decided (no core event of the company waiting, or
GATE_MAX_WAIT_S passed). When the tier is full, the same pass releases them as the window rolls.

Key family: `msglimit:{tenant}:{account}:reached` (the set), `...:ready` (the set is complete: rebuilt or
kept since), `...:gated` (a burst is being sorted), `msglimit:gates` (the gated keys).

Failure policy: Redis errors in `admit` defer the notification (never sent uncounted, never lost); database
errors raise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis
from psycopg import Connection

from config import Settings
from notifications import ledger
from runtime import lua
from runtime.resources import Runtime
from storage import messaging_limits

log = logging.getLogger(__name__)

WINDOW_S = 24 * 3600
REACHED_KEY = "msglimit:{tenant}:{account}:reached"
READY_KEY = "msglimit:{tenant}:{account}:ready"
GATED_KEY = "msglimit:{tenant}:{account}:gated"
GATES_KEY = "msglimit:gates"  # set of the gated keys, so the pass lifts them without scanning Redis
# A gate left by a scheduler that stopped does not hold new notifications for longer than this.
GATED_TTL_S = 3600
# Held notifications wait for the rest of their burst (core events not decided yet) at most this long before
# the pass releases them: a burst past the tier waits hours for its last notifications anyway, and sorting
# it whole is what puts pickups before in-transit news; the cap keeps endless traffic from starving it.
GATE_MAX_WAIT_S = 600.0
# Redis unreachable: try again after this long.
RETRY_S = 30.0
# Held notifications released (and queued) per company per pass at most.
RELEASE_BATCH = 5000

# KEYS: reached, ready, gated. ARGV: now, window, tier (-1: unlimited), member, probe (1: do not take the slot),
# gate (1: respect the gate). Answer: {code, used}: -1 not ready (rebuild first), 1 already counted (free),
# 0 full, -2 gated, 2 a slot is free (probe), 3 the slot was taken.
_ADMIT = lua.script("""
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1, 0} end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local used = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  redis.call('ZADD', KEYS[1], 'GT', now, ARGV[4])
  return {1, used}
end
local tier = tonumber(ARGV[3])
if tier >= 0 and used >= tier then return {0, used} end
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return {-2, used} end
if ARGV[5] == '1' then return {2, used} end
redis.call('ZADD', KEYS[1], now, ARGV[4])
return {3, used + 1}
""")

# KEYS: reached, ready. ARGV: pairs of member, time. Fills the set once (a second rebuilder finds it ready).
_REBUILD = lua.script("""
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 1, #ARGV, 2 do redis.call('ZADD', KEYS[1], 'GT', tonumber(ARGV[i + 1]), ARGV[i]) end
redis.call('SET', KEYS[2], '1')
return 1
""")

# KEYS: reached, ready. ARGV: now, window. The number of customers reached in the window (-1: not ready).
_USED = lua.script("""
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
""")


@dataclass(frozen=True)
class Admission:
    """The answer for one template: `ok` (send it; `counted` says whether it took a new slot), or held."""

    ok: bool
    counted: bool = False
    retry_at: datetime | None = None  # Redis was unreachable: try again then


@dataclass(frozen=True)
class Usage:
    """What the admin sees of an account: its tier, the customers reached in the last 24 hours."""

    account_id: str
    tier: int | None
    source: str  # config | webhook | default
    used: int


def configured_tier(settings: Settings) -> int | None:
    """MESSAGING_LIMIT_TIER: the tier of a company with none recorded."""
    return messaging_limits.parse_tier(settings.messaging_limit_tier)


def tier_for(conn: Connection[Any], settings: Settings, tenant_id: int, account_id: str) -> tuple[int | None, str]:
    """The account's tier and where it comes from (its row, the company's row, else the deployment's setting)."""
    row = messaging_limits.tier_of(conn, tenant_id, account_id)
    if row is None:
        return configured_tier(settings), "default"
    return row.tier, row.source


def _keys(tenant_id: int, account_id: str) -> list[str]:
    account = account_id or "-"
    return [k.format(tenant=tenant_id, account=account) for k in (REACHED_KEY, READY_KEY, GATED_KEY)]


def admit(rt: Runtime, conn: Connection[Any], note: ledger.Notification, *, provider: str, number: str,
          now: datetime, template_only: bool = False) -> Admission:
    """May this notification go as a template now? Takes its customer's slot when it may.

    Not admitted: the notification is held (reason 'messaging_limit') and waits for `release_pass`;
    `template_only` (its free-form message was refused, or it went as the template before): released,
    it goes as the template without trying the free-form message again.
    """
    account = messaging_limits.account_of_channel(conn, note.tenant_id, provider, number)
    tier, _ = tier_for(conn, rt.settings, note.tenant_id, account)
    keys = _keys(note.tenant_id, account)
    member = str(note.contact_id)
    gate = note.admitted_at is None and tier is not None
    try:
        code, used = _call_admit(rt, conn, keys, note.tenant_id, account, now, tier, member, probe=gate, gate=gate)
        if code == 2:  # a slot is free: does the rest of the company's burst fit behind it?
            room = (tier or 0) - used - 1
            if waiting(conn, note.tenant_id, note.id, bound=room + 1) > room:
                pipe = rt.redis.pipeline()
                pipe.set(keys[2], "1", ex=GATED_TTL_S)
                pipe.sadd(GATES_KEY, keys[2])
                pipe.execute()
                log.info("messaging limit: burst larger than the room left, sending by priority",
                         extra={"tenant_id": note.tenant_id, "notification_id": note.id})
                code = -2
            else:
                code, used = _call_admit(rt, conn, keys, note.tenant_id, account, now, tier, member, probe=False,
                                         gate=True)
    except redis.RedisError as exc:
        log.warning("messaging limit unavailable, notification deferred (%s)", type(exc).__name__,
                    extra={"notification_id": note.id})
        retry_at = datetime.now(UTC) + timedelta(seconds=RETRY_S)
        ledger.defer(conn, note.id, retry_at, "messaging limit unavailable")
        return Admission(False, retry_at=retry_at)
    if code in (1, 3):
        return Admission(True, counted=code == 3)
    ledger.hold(conn, note.id, ledger.HOLD_MESSAGING_LIMIT, mode="template" if template_only else None)
    log.info("notification held: messaging limit", extra={"notification_id": note.id, "used": used,
                                                            "tier": tier, "gated": code == -2})
    return Admission(False)


def _call_admit(rt: Runtime, conn: Connection[Any], keys: list[str], tenant_id: int, account: str, now: datetime,
                tier: int | None, member: str, *, probe: bool, gate: bool) -> tuple[int, int]:
    args = [repr(now.timestamp()), str(WINDOW_S), str(-1 if tier is None else tier), member,
            "1" if probe else "0", "1" if gate else "0"]
    for _ in range(2):
        code, used = (int(x) for x in cast(list[Any], _ADMIT(keys=keys, args=args, client=rt.redis)))
        if code != -1:
            return code, used
        rebuild(rt.redis, conn, tenant_id, account, now)
    raise redis.RedisError("the messaging-limit count could not be rebuilt")


def rebuild(redis_conn: redis.Redis, conn: Connection[Any], tenant_id: int, account: str, now: datetime) -> None:
    """Fill a missing count from the templates sent in the last 24 hours (by this account's numbers)."""
    # notification_log records the transport, not the number: every template of the company counts for the
    # account being rebuilt (more than Meta counts when a company has several accounts: the safe side)
    rows = conn.execute(
        """
        SELECT contact_id, extract(epoch FROM max(sent_at)) AS at FROM notification_log
        WHERE tenant_id = %s AND mode = 'template' AND sent_at > %s AND contact_id IS NOT NULL
        GROUP BY contact_id
        """,
        (tenant_id, now - timedelta(seconds=WINDOW_S)),
    ).fetchall()
    args: list[str] = []
    for row in rows:
        args += [str(row["contact_id"]), repr(float(row["at"]))]
    keys = _keys(tenant_id, account)[:2]
    _REBUILD(keys=keys, args=args, client=redis_conn)
    log.info("messaging-limit count rebuilt from the log", extra={"tenant_id": tenant_id, "customers": len(rows)})


def waiting(conn: Connection[Any], tenant_id: int, exclude_id: int, *, bound: int) -> int:
    """How many more templates may be about to compete for the company's tier (counted up to `bound`):
    its core events not processed yet, its notifications waiting or held for the limit."""
    if bound <= 0:
        return 0
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM (SELECT 1 FROM core_events
                                      WHERE tenant_id = %(t)s AND state IN ('received', 'queued') LIMIT %(b)s) e)
             + (SELECT count(*) FROM (SELECT 1 FROM notification_log
                                      WHERE tenant_id = %(t)s AND id <> %(me)s
                                        AND (status IN ('pending', 'deferred')
                                             OR (status = 'held' AND hold_reason = 'messaging_limit'))
                                      LIMIT %(b)s) w) AS n
        """,
        {"t": tenant_id, "me": exclude_id, "b": bound},
    ).fetchone()
    return int(row["n"]) if row else 0


def usage(redis_conn: redis.Redis, conn: Connection[Any], settings: Settings, tenant_id: int,
          now: datetime | None = None) -> list[Usage]:
    """Each of the company's accounts with its tier and how many customers it reached in the last 24 hours."""
    now = now or datetime.now(UTC)
    accounts = {messaging_limits.DEFAULT_ACCOUNT}
    accounts |= {t.account_id for t in messaging_limits.tiers_of_tenant(conn, tenant_id)}
    accounts |= {str(r["waba_id"]) for r in conn.execute(
        "SELECT DISTINCT waba_id FROM tenant_channels WHERE tenant_id = %s AND waba_id IS NOT NULL AND waba_id <> ''",
        (tenant_id,)).fetchall()}
    shown = []
    for account in sorted(accounts):
        tier, source = tier_for(conn, settings, tenant_id, account)
        keys = _keys(tenant_id, account)
        args = [repr(now.timestamp()), str(WINDOW_S)]
        used = int(cast(int, _USED(keys=keys[:2], args=args, client=redis_conn)))
        if used < 0:
            rebuild(redis_conn, conn, tenant_id, account, now)
            used = int(cast(int, _USED(keys=keys[:2], args=args, client=redis_conn)))
        if account == messaging_limits.DEFAULT_ACCOUNT and used == 0 and len(accounts) > 1:
            continue  # the company-wide fallback, unused: its numbers all have an account
        shown.append(Usage(account, tier, source, max(0, used)))
    return shown


def release_pass(rt: Runtime, now: datetime) -> list[int]:
    """The scheduler's step: let held notifications go, in priority order, as far as each tier has room;
    returns the ids released (already queued for sending)."""
    from notifications import jobs  # jobs -> sending -> limits

    released: list[int] = []
    with rt.pool.connection() as conn:
        held_rows = conn.execute(
            "SELECT DISTINCT tenant_id FROM notification_log WHERE status = 'held' AND hold_reason = %s",
            (ledger.HOLD_MESSAGING_LIMIT,)).fetchall()
        tenants = [int(r["tenant_id"]) for r in held_rows]  # type: ignore[call-overload]
        for tenant_id in tenants:
            if _burst_undecided(conn, tenant_id, now):
                continue
            room = 0
            for account in usage(rt.redis, conn, rt.settings, tenant_id, now):
                room += RELEASE_BATCH if account.tier is None else max(0, account.tier - account.used)
            room -= _admitted_unsent(conn, tenant_id)  # released by an earlier pass, their slots not taken yet
            if room <= 0:
                continue
            ids = ledger.release_held(conn, tenant_id, ledger.HOLD_MESSAGING_LIMIT,
                                      limit=min(room, RELEASE_BATCH), admitted=True, at=now)
            released += ids
            if not ledger.held_counts(conn, tenant_id).get(ledger.HOLD_MESSAGING_LIMIT):
                _ungate(rt, {tenant_id})
        _ungate(rt, None, keep=set(tenants))
    for log_id in released:
        jobs.enqueue_send(rt.queue, rt.settings, log_id)
    if released:
        log.info("held notifications released", extra={"released": len(released)})
    return released


def _admitted_unsent(conn: Connection[Any], tenant_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM notification_log WHERE tenant_id = %s AND admitted_at IS NOT NULL"
        " AND status IN ('pending', 'deferred', 'sending') AND message_id IS NULL",
        (tenant_id,),
    ).fetchone()
    return int(row["n"]) if row else 0


def _burst_undecided(conn: Connection[Any], tenant_id: int, now: datetime) -> bool:
    """Core events of the company still being turned into notifications, and its oldest held one is recent."""
    row = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM core_events WHERE tenant_id = %(t)s AND state IN ('received', 'queued')
                       AND received_at > %(now)s - interval '1 hour') AS busy,
               (SELECT min(held_at) FROM notification_log WHERE tenant_id = %(t)s AND status = 'held'
                  AND hold_reason = 'messaging_limit') AS oldest
        """,
        {"t": tenant_id, "now": now},
    ).fetchone()
    if row is None or not row["busy"] or row["oldest"] is None:
        return False
    return bool((now - row["oldest"]).total_seconds() < GATE_MAX_WAIT_S)


def _ungate(rt: Runtime, tenants: set[int] | None, *, keep: set[int] | frozenset[int] = frozenset()) -> None:
    """Lift the gates of these companies (None: of every company not in `keep`, i.e. with nothing held)."""
    for key in cast(set[bytes], rt.redis.smembers(GATES_KEY)):
        name = key.decode()
        tenant = name.split(":")[1]
        if not tenant.isdigit() or int(tenant) in keep or (tenants is not None and int(tenant) not in tenants):
            continue
        pipe = rt.redis.pipeline()
        pipe.delete(name)
        pipe.srem(GATES_KEY, name)
        pipe.execute()


def tier_words(tier: int | None) -> str:
    """'2,000 clientes en 24 h' / 'sin límite' (the admin's words for a tier)."""
    return "sin límite" if tier is None else f"{tier:,} clientes en 24 h"


def hold_text(reason: str | None, tier: int | None = None, *, full: bool = True) -> str:
    """Why a notification waits, for the company's admin (`full`: the tier is used up right now; otherwise a
    burst larger than what is left is being sorted by priority)."""
    if reason == ledger.HOLD_MESSAGING_LIMIT:
        limit = f" ({tier_words(tier)})" if tier is not None else ""
        if not full:
            return (f"En espera: son más avisos de los que permite el límite diario de WhatsApp{limit}; "
                    "salen por prioridad.")
        return f"En espera: se alcanzó el límite diario de WhatsApp{limit}. Sale por prioridad cuando haya cupo."
    if reason == ledger.HOLD_TEMPLATE_PAUSED:
        return "En espera: Meta pausó la plantilla de este aviso. Sale cuando la vuelvan a aprobar."
    return "En espera."
