"""What the worker does for the console when a customer writes or a status arrives.

- `answer`: a few customer messages are about the hand-over itself, not for the
  bot: the 1-10 rating asked when an agent resolved the case (within a day),
  the comment that may follow the rating (`chatbot.rating_comment` says when
  a message is one), and the buttons of the "nobody is free yet" message
  (call me back / keep waiting). `answer` returns the outcome for those (stored by the worker like
  any other) and None for everything else, which goes to the engine as usual.
- `announce_message` / `announce_status`: live console events after a message
  of a conversation with a person (or a new escalation) was stored, and after a
  delivery status of such a conversation changed.

Failure policy: database errors raise (the worker's job is retried); live
events never raise.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
from psycopg import Connection
from psycopg_pool import ConnectionPool

from channels.events import InboundMessage
from channels.outbound import Text
from chatbot import rating_comment
from chatbot.engine import Outcome
from handoff import cases, live
from storage import analytics, dialogs

log = logging.getLogger(__name__)

CSAT_WINDOW = "24 hours"
CALLBACK_ID, WAIT_ID = "console:callback", "console:wait"
_RATING = re.compile(r"^\s*(10|[1-9])\s*(?:/\s*10)?\s*[.!]?\s*$")
_RATING_WITH_WORDS = re.compile(r"^\s*(10|[1-9])\s*(?:/\s*10)?\s*[.,:;!-]?\s+(\D*[^\W\d_]\D*)$")  # "8, muy amable"


def answer(pool: ConnectionPool, redis_conn: redis.Redis, event: InboundMessage, *, tenant_id: int,
           contact_id: int, conversation_id: int, conversation_status: str, conversation_hash: str) -> Outcome | None:
    """The reply to a rating or to a waiting-notice button; None when the message is for the bot.

    Most messages are neither: they are told apart without touching the database.
    """
    if event.reply_id in (CALLBACK_ID, WAIT_ID) and conversation_status == "escalated":
        with pool.connection() as conn, conn.transaction():
            return _waiting_choice(conn, redis_conn, event.reply_id, tenant_id, conversation_id, conversation_hash)
    if conversation_status != "bot":  # with a person, "2" answers the agent's question, not the rating
        return None
    if event.reply_id is not None or not event.text:
        return None
    match = _RATING.match(event.text)
    if match is None and (both := _RATING_WITH_WORDS.match(event.text)) is not None:
        return _rating_with_comment(pool, redis_conn, int(both.group(1)), both.group(2), tenant_id=tenant_id,
                                    contact_id=contact_id, conversation_id=conversation_id,
                                    conversation_hash=conversation_hash)
    if match is None:
        return _comment(pool, redis_conn, event.text, tenant_id=tenant_id, conversation_id=conversation_id,
                        conversation_hash=conversation_hash)
    with pool.connection() as conn, conn.transaction():
        return _rating(conn, redis_conn, int(match.group(1)), tenant_id=tenant_id, contact_id=contact_id,
                       conversation_id=conversation_id, conversation_hash=conversation_hash)


def _comment(pool: ConnectionPool, redis_conn: redis.Redis, text: str, *, tenant_id: int, conversation_id: int,
             conversation_hash: str, checked: bool = False) -> Outcome | None:
    """The first message after a rating: stored with it and thanked when it reads as a comment (`checked`:
    the caller knows it does)."""
    case_id = rating_comment.pending(redis_conn, conversation_hash)
    if case_id is None:
        return None
    comment = checked or rating_comment.reads_as_comment(text)
    stored = rating_comment.store(pool, redis_conn, tenant_id=tenant_id, conversation_id=conversation_id,
                                  case_id=case_id, text=text) if comment else None
    rating_comment.close(redis_conn, conversation_hash)
    if stored is None:
        return None
    return Outcome([Text(cases.wording()["csat_comment_thanks"])],
                   {"stage": "console", "intent": "csat_comment", "score": stored["csat_score"]},
                   dialogs.load(redis_conn, conversation_hash))


def _rating_with_comment(pool: ConnectionPool, redis_conn: redis.Redis, score: int, words: str, *, tenant_id: int,
                         contact_id: int, conversation_id: int, conversation_hash: str) -> Outcome | None:
    """"8, el agente fue muy amable": the rating and its comment in one message (when a rating is pending and
    the words read as a comment; otherwise the message is the bot's)."""
    if not rating_comment.reads_as_comment(words, with_score=True):
        return None
    with pool.connection() as conn, conn.transaction():
        rated = _rating(conn, redis_conn, score, tenant_id=tenant_id, contact_id=contact_id,
                        conversation_id=conversation_id, conversation_hash=conversation_hash)
    if rated is None:
        return None
    return _comment(pool, redis_conn, words, tenant_id=tenant_id, conversation_id=conversation_id,
                    conversation_hash=conversation_hash, checked=True) or rated


def _rating(conn: Connection[Any], redis_conn: redis.Redis, score: int, *, tenant_id: int, contact_id: int,
            conversation_id: int, conversation_hash: str) -> Outcome | None:
    row = conn.execute(
        f"""
        UPDATE escalations SET csat_score = %s, csat_at = now()
        WHERE id = (SELECT e.id FROM escalations e JOIN conversations c ON c.id = e.conversation_id
                    WHERE c.contact_id = %s AND e.tenant_id = %s AND e.csat_score IS NULL
                      AND e.csat_asked_at > now() - interval '{CSAT_WINDOW}'
                    ORDER BY e.csat_asked_at DESC LIMIT 1)
        RETURNING id, case_number, resolved_by
        """,  # noqa: S608 - a fixed interval
        (score, contact_id, tenant_id),
    ).fetchone()
    if row is None:
        return None
    analytics.record(conn, tenant_id=tenant_id, conversation_id=conversation_id, kind="csat",
                     data={"score": score, "scale": 10, "case_number": row["case_number"],
                           "agent_id": row["resolved_by"]})
    live.publish(redis_conn, tenant_id, "handoff", case_id=row["id"], action="rated", score=score)
    rating_comment.offer(redis_conn, conversation_hash, int(row["id"]))
    return Outcome([Text(cases.wording()["csat_thanks"])], {"stage": "console", "intent": "csat", "score": score},
                   dialogs.load(redis_conn, conversation_hash))


def _waiting_choice(conn: Connection[Any], redis_conn: redis.Redis, choice: str | None, tenant_id: int,
                    conversation_id: int, conversation_hash: str) -> Outcome | None:
    row = conn.execute(
        "SELECT e.id, e.case_number, e.status, ct.profile_name FROM escalations e"
        " JOIN conversations c ON c.id = e.conversation_id JOIN contacts ct ON ct.id = c.contact_id"
        " WHERE e.conversation_id = %s AND e.status IN ('waiting', 'callback') ORDER BY e.id DESC LIMIT 1",
        (conversation_id,),
    ).fetchone()
    if row is None:
        return None
    w = cases.wording()
    state = dialogs.load(redis_conn, conversation_hash)
    if choice == WAIT_ID:
        return Outcome([Text(w["keep_waiting"].format(case=row["case_number"]))],
                       {"stage": "console", "intent": "keep_waiting"}, state)
    conn.execute(
        "UPDATE escalations SET status = 'callback', callback_due_at = COALESCE(callback_due_at, now())"
        " WHERE id = %s AND status IN ('waiting', 'callback')",
        (row["id"],),
    )
    conn.execute("INSERT INTO handoff_events (tenant_id, escalation_id, action) VALUES (%s, %s, 'callback_requested')",
                 (tenant_id, row["id"]))
    live.publish(redis_conn, tenant_id, "handoff", case_id=row["id"], conversation_id=conversation_id,
                 action="callback_requested")
    body = w["callback_confirmed"].format(name_part=cases.name_part(row["profile_name"]).replace(" ", ", ", 1),
                                          case=row["case_number"])
    return Outcome([Text(body)], {"stage": "console", "intent": "callback_requested"}, state)


def announce_message(conn: Connection[Any], redis_conn: redis.Redis, *, tenant_id: int, conversation_id: int,
                     new_case: bool) -> None:
    """After a customer message was stored: tell the console about a new case or a message in a case."""
    row = conn.execute(
        "SELECT id, priority, status FROM escalations"
        " WHERE conversation_id = %s AND status IN ('waiting', 'taken', 'callback') ORDER BY id DESC LIMIT 1",
        (conversation_id,),
    ).fetchone()
    if row is None:
        return
    live.publish(redis_conn, tenant_id, "message", case_id=row["id"], conversation_id=conversation_id)
    if new_case:
        live.publish(redis_conn, tenant_id, "escalation", case_id=row["id"], conversation_id=conversation_id,
                     priority=row["priority"], status=row["status"])


def announce_status(conn: Connection[Any], redis_conn: redis.Redis, *, channel: str, provider_message_id: str) -> None:
    """After a delivery status was applied: tell the console when the message belongs to a case."""
    row = conn.execute(
        "SELECT m.id, m.tenant_id, m.conversation_id, m.status, e.id AS case_id FROM messages m"
        " JOIN escalations e ON e.conversation_id = m.conversation_id"
        " WHERE m.channel = %s AND m.provider_message_id = %s ORDER BY e.id DESC LIMIT 1",
        (channel, provider_message_id),
    ).fetchone()
    if row is not None:
        live.publish(redis_conn, row["tenant_id"], "status", case_id=row["case_id"],
                     conversation_id=row["conversation_id"], message_id=row["id"], status=row["status"])
