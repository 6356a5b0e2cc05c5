"""The recent exchanges a model sees: Redis list `llm:history:{conversation_hash}`, 24 h TTL.

Kept only when a provider is configured (rules-only deployments store no
extra text). Each item is one exchange {"c": customer text, "b": bot text,
"id": conversation id} (a new conversation of the same customer starts without the old one's context),
each side cut to `MAX_SIDE_CHARS`, the list to `MAX_ITEMS`; `recent` returns
the newest exchanges that fit a character budget (a stand-in for tokens:
Spanish runs at about 4 characters a token).

Failure policy: Redis errors and unreadable items are logged and never
raised (the model then sees less context).
"""

from __future__ import annotations

import json
import logging

import redis

log = logging.getLogger(__name__)

KEY = "llm:history:{conversation_hash}"
TTL_S = 24 * 3600
MAX_ITEMS = 20
MAX_SIDE_CHARS = 400
BUDGET_CHARS = 2400


def _key(conversation_hash: str) -> str:
    return KEY.format(conversation_hash=conversation_hash)


def append(conn: redis.Redis, conversation_hash: str, conversation_id: int, customer: str, bot: str) -> None:
    item = json.dumps({"c": customer[:MAX_SIDE_CHARS], "b": bot[:MAX_SIDE_CHARS], "id": conversation_id},
                      ensure_ascii=False)
    try:
        pipe = conn.pipeline()
        pipe.rpush(_key(conversation_hash), item)
        pipe.ltrim(_key(conversation_hash), -MAX_ITEMS, -1)
        pipe.expire(_key(conversation_hash), TTL_S)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("llm history not saved: %s", type(exc).__name__)


def recent(conn: redis.Redis, conversation_hash: str, conversation_id: int, turns: int) -> list[tuple[str, str]]:
    """Up to `turns` latest (customer, bot) exchanges of this conversation, oldest first, within the budget."""
    if turns <= 0:
        return []
    try:
        raw = conn.lrange(_key(conversation_hash), -turns, -1)
    except redis.RedisError as exc:
        log.warning("llm history unreadable: %s", type(exc).__name__)
        return []
    exchanges: list[tuple[str, str]] = []
    for item in raw:
        try:
            data = json.loads(item)
            if data.get("id") == conversation_id:
                exchanges.append((str(data["c"]), str(data["b"])))
        except (ValueError, KeyError, TypeError):
            continue
    kept: list[tuple[str, str]] = []
    used = 0
    for customer, bot in reversed(exchanges):
        used += len(customer) + len(bot)
        if used > BUDGET_CHARS:
            break
        kept.append((customer, bot))
    return list(reversed(kept))


def clear(conn: redis.Redis, conversation_hash: str) -> None:
    try:
        conn.delete(_key(conversation_hash))
    except redis.RedisError as exc:
        log.warning("llm history not cleared: %s", type(exc).__name__)
