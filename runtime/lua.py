"""Redis Lua scripts: each one is sent by its SHA (EVALSHA) and loaded the first time a server lacks it.

Used by the throttle buckets (runtime.throttle), the abuse guard (chatbot.guard)
and the customers' inboxes (runtime.inbox): one round trip for a read-modify-write.
"""

from __future__ import annotations

from typing import Any, cast

from redis.commands.core import Script


def script(source: str) -> Script:
    """A script to call with an explicit client, a connection or a pipeline: `s(keys=..., args=..., client=conn)`."""
    return Script(cast(Any, None), source.encode())
