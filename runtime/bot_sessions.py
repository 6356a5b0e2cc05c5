"""Redis keys `plan:session:{tenant_id}:{contact_id}` and `plan:sessions:{tenant_id}:{YYYY-MM}`: the bot
conversations a tenant's customers opened this month, counted as they open, for the plan's
`bot_conversations` limit (runtime/plan_terms.py).

The billing truth is `storage.usage.bot_conversations`, counted from the
messages; that query walks the month's messages, too heavy to run for every
message. This counter follows the same definition as they arrive, in one
Redis round trip: a customer's message opens a session when no session of
that customer is open, and a session stays open for 24 hours from the message
that opened it (the session key, SET NX with a 24-hour expiry); each opening
adds one to the month's counter (the month of the tenant's clock when it
opened). Why that is accurate enough to enforce a limit:
- a job that runs again finds the session key and counts nothing twice;
- the time is the worker's, not the message's `created_at`: seconds apart,
  so a session can differ only for a customer writing again within seconds
  of the 24-hour mark;
- a counter Redis does not have (the month's first session, or Redis lost
  its data) is seeded from `storage.usage` once, so a restart never gives a
  tenant a fresh quota; a session key lost with Redis can count one session
  too many for that customer, never fewer;
- the limit is a threshold the plan's overage rule acts on (flag, or rules
  only), never a refusal: a customer is always answered.

Failure policy: Redis errors are logged and never raised (None: not counted,
the limit is not enforced for that message); database errors while seeding
raise (the job is retried).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from psycopg_pool import ConnectionPool

from runtime.lua import script
from storage import usage
from storage.tenants import Tenant

log = logging.getLogger(__name__)

SESSION_KEY = "plan:session:{tenant_id}:{contact_id}"
MONTH_KEY = "plan:sessions:{tenant_id}:{month}"
SESSION_S = int(usage.SESSION.total_seconds())
MONTH_KEY_S = 40 * 24 * 3600  # a month's counter outlives its month by about ten days

# KEYS: session, month counter; ARGV: session seconds, counter seconds.
# Returns {opened (0|1), the month's count, whether the counter existed before (0|1)}.
_COUNT = script("""
local existed = redis.call('EXISTS', KEYS[2])
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local n = redis.call('INCR', KEYS[2])
  if existed == 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
  return {1, n, existed}
end
return {0, tonumber(redis.call('GET', KEYS[2]) or '0'), existed}
""")
# KEYS: month counter; ARGV: the count from the database, counter seconds. The larger of the two stays.
_SEED = script("""
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local counted = tonumber(ARGV[1])
if counted > current then current = counted end
redis.call('SET', KEYS[1], current, 'EX', ARGV[2])
return current
""")


def count_message(conn: redis.Redis, pool: ConnectionPool, tenant: Tenant, contact_id: int,
                  now: datetime | None = None) -> tuple[bool, int] | None:
    """Count a customer's message: (whether it opened a session, the month's sessions so far including it).

    None when Redis cannot be reached (see the failure policy)."""
    moment = now or datetime.now(UTC)
    local = moment.astimezone(ZoneInfo(tenant.timezone))
    month = usage.Month(local.year, local.month)
    key = MONTH_KEY.format(tenant_id=tenant.id, month=month)
    try:
        opened, count, existed = _COUNT(keys=[SESSION_KEY.format(tenant_id=tenant.id, contact_id=contact_id), key],
                                        args=[SESSION_S, MONTH_KEY_S], client=conn)
        if not existed:
            start, end = month.bounds(tenant.timezone)
            with pool.connection() as db:
                counted = usage.bot_conversations(db, tenant.id, start, min(end, moment + timedelta(seconds=1)))
            count = _SEED(keys=[key], args=[counted, MONTH_KEY_S], client=conn)
    except redis.RedisError as exc:
        log.warning("bot conversations not counted (%s)", type(exc).__name__, extra={"tenant_id": tenant.id})
        return None
    return bool(opened), int(count)
