"""Everything the case page names, in the agent's words: never a stored id.

Case statuses, reasons, history actions, call outcomes, the dialog's state and the kinds of message that
are not text come from handoff/texts.yaml; a value this version has no words for is shown with a general
phrase, never as its id. Service point ids (`la_union`) in the bot's messages and in the bot's facts become
the point's name ("La Unión - Punto Centro"); when the point list cannot be read, a readable form of the id
("La Union") is shown instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from console.summary import Facts, reason_text
from console.whatsapp_text import to_html
from handoff.cases import wording

_ID = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")


class _Blank(dict[str, str]):
    """Recorded values for a history line; one the record lacks reads as nothing, never as a crash."""

    def __missing__(self, key: str) -> str:
        return ""


def _group(name: str) -> dict[str, Any]:
    found: dict[str, Any] = wording()[name]
    return found


def case_status(status: str) -> str:
    """"Pendiente de llamada" for `callback`."""
    return str(_group("case_status_titles").get(status) or _group("history")["other"])


def reason(reason_id: str) -> str:
    """Why the bot handed over, in words ("presentó un reclamo")."""
    return reason_text(reason_id)


def call_outcome(outcome: str) -> str:
    return str(_group("call_outcomes").get(outcome) or _group("history")["other"])


def history_line(action: str, data: Mapping[str, Any] | None) -> str:
    """One recorded action of the case ("Llamó al cliente: No contestó"), plus the note given with it."""
    lines = _group("history")
    template = lines.get(action)
    if template is None:
        return str(lines["other"])
    values = _Blank({k: str(v) for k, v in (data or {}).items() if v is not None})
    values["outcome"] = call_outcome(values.get("outcome", ""))
    text = str(template).format_map(values)
    note = (data or {}).get("note")
    return f"{text} — «{note}»" if isinstance(note, str) and note.strip() else text


def dialog_state(state: str | None) -> str | None:
    """What the bot was doing, in words; None when there is nothing (or nothing this version can name)."""
    if not state:
        return None
    found = _group("dialog_states").get(state)
    return str(found) if found else None


def message_kind(kind: str) -> str:
    """"[imagen]" for a message that is not text."""
    kinds = _group("message_kinds")
    return str(kinds.get(kind) or kinds["other"])


def delivery_error(code: str | None) -> str:
    """Why a message did not reach the customer, in words (the provider's own text is English and technical)."""
    errors = _group("delivery_errors")
    return str(errors.get(str(code or "")) or errors["other"])


def readable_id(value: str) -> str:
    """A last resort for an id with no name at hand: "la_union" becomes "La Union"."""
    return " ".join(word.capitalize() for word in value.split("_"))


def point_name(point_id: str | None, names: Mapping[str, str]) -> str | None:
    """The point's name for its id; a value that is no id (a city, a name already) stays as it is."""
    if not point_id:
        return None
    if point_id in names:
        return names[point_id]
    return readable_id(point_id) if _ID.fullmatch(point_id) else point_id


def name_points(text: str, names: Mapping[str, str]) -> str:
    """The text with every known point id (`la_union`, `soyapango`) replaced by the point's name."""
    if not text:
        return text
    for point_id, name in names.items():
        if point_id in text:
            text = re.sub(rf"(?<![\w@./-]){re.escape(point_id)}(?![\w@/-])", name, text)
    return text


def present_case(detail: dict[str, Any], names: Mapping[str, str]) -> None:
    """Put the case page's data in words, in place: the bot's messages name points instead of their ids, every
    message and the summary carry their WhatsApp formatting as safe HTML (`html`), the history, the reason and
    the dialog state read as sentences, and the bot's facts name the point."""
    for message in detail.get("messages", []):
        if message.get("direction") == "out":
            message["body"] = name_points(str(message["body"]), names)
        message["html"] = str(to_html(str(message["body"])))
    detail["summary_html"] = str(to_html(str(detail.get("summary") or "")))
    detail["history"] = [{**h, "text": history_line(str(h["action"]), h.get("data"))}
                         for h in detail.get("history", [])]
    detail["reason_text"] = reason(str(detail.get("reason") or ""))
    detail["dialog_state_text"] = dialog_state(detail.get("dialog_state"))
    detail["call_outcomes"] = [{"id": key, "label": str(label)} for key, label in _group("call_outcomes").items()]
    for line in detail.get("packages", []):
        line["destination"] = point_name(line.get("destination"), names)


def named_facts(facts: Facts, names: Mapping[str, str]) -> Facts:
    """The bot's facts with the point's name instead of its id (the summary and the LLM read these)."""
    return replace(facts, point=point_name(facts.point, names))
