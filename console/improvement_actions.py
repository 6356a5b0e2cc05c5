"""What the "Mejoras" page makes of a group of unanswered messages, and how each change is undone.

Three changes, each kept in `storage.improvement_changes` with who made it,
when, the group's representative message and the object made:

- a new FAQ answer: the company's next FAQ version with one more entry
  (storage.faq_versions; undo: the next version without that entry);
- a new phrase for an existing intent (storage.intent_phrases; undo: the phrase deleted);
- a canned answer for agents (console.canned; undo: the answer deleted).

Each takes effect without a deploy: the FAQ and phrases are announced on
`tenants:version`, so the workers' caches read them within about a second; a
canned answer is read by the console on each page. The object and its
history row are written in one transaction, and the change is announced
again after the commit (an announcement made inside the transaction could be
read before the new rows are visible). Refusals raise `ImprovementError` with
the admin's reason in Spanish. Nothing here logs message text.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from psycopg import Connection

from console import canned, faq_editing
from storage import faq_versions, improvement_changes, intent_phrases, tenant_changes
from storage.faq_content import FaqData, FaqDataError
from storage.improvement_changes import Change

log = logging.getLogger(__name__)

NOTE_FAQ, NOTE_UNDO = "Mejoras: agregó una pregunta", "Mejoras: deshizo una pregunta agregada"


class ImprovementError(ValueError):
    """A change the page refuses; the message is for the admin, in Spanish."""


def _faq(conn: Connection[Any], tenant_id: int) -> FaqData:
    """The company's current FAQ; its seed file stored first as its first version when it has none yet (as the
    FAQ page does), so the history shows where the company started."""
    found = faq_versions.current(conn, tenant_id)
    if found is None:
        row: Any = conn.execute("SELECT slug FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
        try:
            faq_versions.seed_from_file(conn, None, tenant_id, str(row["slug"]))
        except FaqDataError as exc:  # the company then starts from what the bot answers with now
            log.error("faq seed file unusable, not stored: %s", exc)
        found = faq_versions.current(conn, tenant_id)
    return found.data if found is not None else faq_versions.answering(conn, tenant_id)


def add_faq(conn: Connection[Any], redis_conn: redis.Redis | None, *, tenant_id: int, agent_id: int,
            group_text: str, question: str, answer: str, keywords: str) -> int:
    """A new FAQ entry from a group; returns the change's id."""
    with conn.transaction():
        conn.execute("SELECT id FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,))
        try:
            data = faq_editing.add_entry(_faq(conn, tenant_id), question, answer, keywords)
        except faq_editing.FaqFormError as exc:
            raise ImprovementError(str(exc)) from None
        entry = data.entries[-1]
        version = faq_versions.save(conn, None, tenant_id, data, origin="console", created_by=agent_id,
                                    note=NOTE_FAQ)
        change = improvement_changes.record(
            conn, tenant_id=tenant_id, action="faq", group_text=group_text, created_by=agent_id,
            summary=f"Pregunta frecuente «{entry.question}»", target={"faq_entry": entry.id, "faq_version": version})
    tenant_changes.announce(redis_conn)
    log.info("improvement made", extra={"tenant_id": tenant_id, "action": "faq", "change_id": change})
    return change


def add_phrase(conn: Connection[Any], redis_conn: redis.Redis | None, *, tenant_id: int, agent_id: int,
               group_text: str, intent: str, phrase: str) -> int:
    """A company phrase for an intent from a group; returns the change's id."""
    with conn.transaction():
        try:
            phrase_id = intent_phrases.add(conn, None, tenant_id, intent, phrase, created_by=agent_id)
        except intent_phrases.PhraseError as exc:
            raise ImprovementError(str(exc)) from None
        label = intent_phrases.INTENT_LABELS[intent]
        change = improvement_changes.record(
            conn, tenant_id=tenant_id, action="phrase", group_text=group_text, created_by=agent_id,
            summary=f"Frase «{' '.join(phrase.split())}» para «{label}»", target={"phrase_id": phrase_id})
    tenant_changes.announce(redis_conn)
    log.info("improvement made", extra={"tenant_id": tenant_id, "action": "phrase", "change_id": change})
    return change


def add_canned(conn: Connection[Any], *, tenant_id: int, agent_id: int, group_text: str, title: str,
               body: str) -> int:
    """A canned answer for the company's agents from a group; returns the change's id."""
    title = " ".join(title.split())
    with conn.transaction():
        taken = conn.execute("SELECT 1 FROM canned_answers WHERE tenant_id = %s AND title = %s",
                             (tenant_id, title)).fetchone()
        if taken is not None:
            raise ImprovementError("Ya hay una respuesta rápida con ese título: ponle otro.")
        try:
            answer_id = canned.add(conn, tenant_id, title, body)
        except canned.CannedError as exc:
            raise ImprovementError(str(exc)) from None
        change = improvement_changes.record(
            conn, tenant_id=tenant_id, action="canned", group_text=group_text, created_by=agent_id,
            summary=f"Respuesta rápida «{title}»", target={"canned_id": answer_id})
    log.info("improvement made", extra={"tenant_id": tenant_id, "action": "canned", "change_id": change})
    return change


def undo(conn: Connection[Any], redis_conn: redis.Redis | None, change: Change, agent_id: int) -> str:
    """Undo a change of the admin's company; returns what the admin reads. ImprovementError when done already."""
    with conn.transaction():
        if not improvement_changes.mark_undone(conn, change.tenant_id, change.id, agent_id):
            raise ImprovementError("Ese cambio ya estaba deshecho.")
        if change.action == "faq":
            said = _undo_faq(conn, change, agent_id)
        elif change.action == "phrase":
            gone = intent_phrases.remove(conn, None, change.tenant_id, int(change.target["phrase_id"]))
            said = "Listo: el asistente ya no usa esa frase." if gone else "Esa frase ya no estaba."
        else:
            gone = canned.remove(conn, change.tenant_id, int(change.target["canned_id"]))
            said = "Listo: quitamos esa respuesta rápida." if gone else "Esa respuesta rápida ya no estaba."
    tenant_changes.announce(redis_conn)
    log.info("improvement undone", extra={"tenant_id": change.tenant_id, "action": change.action,
                                          "change_id": change.id})
    return said


def _undo_faq(conn: Connection[Any], change: Change, agent_id: int) -> str:
    conn.execute("SELECT id FROM tenants WHERE id = %s FOR UPDATE", (change.tenant_id,))
    data = _faq(conn, change.tenant_id)
    try:
        without = faq_editing.delete_entry(data, str(change.target["faq_entry"]))
    except KeyError:
        return "Esa pregunta ya no estaba en las preguntas frecuentes."
    version = faq_versions.save(conn, None, change.tenant_id, without, origin="console", created_by=agent_id,
                                note=NOTE_UNDO)
    return f"Listo: quitamos esa pregunta (versión {version}). El asistente vuelve a responder como antes."
