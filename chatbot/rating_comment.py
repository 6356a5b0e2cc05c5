"""The words a customer adds after rating an agent's attention (the 1-10 question after a resolved case).

The rule: the FIRST free-text message after the rating, within `WINDOW_S` (30 minutes), is a comment
on it when the router reads it as feedback and it names nothing the bot could act on (a complaint,
free text that asks nothing, thanks in a few words; no tracking code, place or weight: the rule is
`chatbot.feedback.reads_as_comment`, shared with the bot's own rating). Such a comment is stored with
the rating on the rated case (`escalations.csat_comment`, plus a `csat_comment` line in the case's
history the console shows), thanked once, and opens no case. Anything else is a real request ("¿y mi
otro paquete?", a tracking code, "quiero hablar con alguien") and goes to the bot as usual; the chance
to comment ends with that first message either way.

Key family (one per conversation, the conversation's hash as everywhere else, never a phone):
`CHANCE_KEY` holds the rated case's id until the first message after the rating, or `WINDOW_S`.

Failure policy: database errors raise (the worker's job is retried, and finds the chance again
because the key is removed only after the comment was stored); Redis errors raise like the rest of
the worker's Redis use; live events never raise.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from psycopg_pool import ConnectionPool

from chatbot import feedback
from chatbot.router import route
from handoff import live
from storage import analytics

log = logging.getLogger(__name__)

CHANCE_KEY = "console:csat-comment:{conversation}"
WINDOW_S = 30 * 60


def offer(redis_conn: redis.Redis, conversation_hash: str, case_id: int) -> None:
    """After a rating: the customer's next message may comment on it (for `WINDOW_S`)."""
    redis_conn.set(CHANCE_KEY.format(conversation=conversation_hash), str(case_id), ex=WINDOW_S)


def pending(redis_conn: redis.Redis, conversation_hash: str) -> int | None:
    """The rated case whose comment this message may be, if the chance is still open."""
    raw = redis_conn.get(CHANCE_KEY.format(conversation=conversation_hash))
    value = raw.decode() if isinstance(raw, bytes) else raw
    return int(value) if isinstance(value, str) and value.isdigit() else None


def close(redis_conn: redis.Redis, conversation_hash: str) -> None:
    redis_conn.delete(CHANCE_KEY.format(conversation=conversation_hash))


def reads_as_comment(text: str, *, with_score: bool = False) -> bool:
    """Whether a message is feedback on the rating rather than a request (`chatbot.feedback`)."""
    return feedback.reads_as_comment(route(text), text, with_score=with_score)


def store(pool: ConnectionPool, redis_conn: redis.Redis, *, tenant_id: int, conversation_id: int, case_id: int,
          text: str) -> dict[str, Any] | None:
    """Keep the comment with the rating of `case_id` (once); the case's number and score, None if not stored."""
    comment = " ".join(text.split())[:feedback.COMMENT_MAX]
    with pool.connection() as conn, conn.transaction():
        row: Any = conn.execute(
            "UPDATE escalations SET csat_comment = %s, csat_comment_at = now()"
            " WHERE id = %s AND tenant_id = %s AND csat_score IS NOT NULL AND csat_comment IS NULL"
            " RETURNING id, case_number, csat_score, resolved_by",
            (comment, case_id, tenant_id),
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "INSERT INTO handoff_events (tenant_id, escalation_id, action, data)"
            " VALUES (%s, %s, 'csat_comment', jsonb_build_object('score', %s::int, 'note', %s::text))",
            (tenant_id, case_id, row["csat_score"], comment),
        )
        analytics.record(conn, tenant_id=tenant_id, conversation_id=conversation_id, kind="csat_comment",
                         data={"scale": 10, "score": row["csat_score"], "case_number": row["case_number"],
                               "agent_id": row["resolved_by"]})
    live.publish(redis_conn, tenant_id, "handoff", case_id=case_id, action="commented")
    return dict(row)
