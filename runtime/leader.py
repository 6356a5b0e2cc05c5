"""A Redis lease so that only one scheduler instance runs timed jobs, even if two are started.

`Leader.holds()` takes the lease when it is free or renews it when it is ours
(compare-and-extend in Lua, so a stale holder cannot renew someone else's).
"""

from __future__ import annotations

import uuid

import redis

LEASE_KEY = "scheduler:leader"

_TAKE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leader:
    def __init__(self, conn: redis.Redis, lease_s: float, key: str = LEASE_KEY) -> None:
        self.conn = conn
        self.key = key
        self.lease_ms = int(lease_s * 1000)
        self.identity = uuid.uuid4().hex
        self._script = conn.register_script(_TAKE_OR_RENEW)
        self._release = conn.register_script(_RELEASE)

    def holds(self) -> bool:
        """True when this instance holds the lease now (taken or renewed). Redis errors mean False."""
        try:
            return bool(self._script(keys=[self.key], args=[self.identity, self.lease_ms]))
        except redis.RedisError:
            return False

    def release(self) -> None:
        try:
            self._release(keys=[self.key], args=[self.identity])
        except redis.RedisError:
            pass
