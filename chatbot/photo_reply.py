"""The bot's question about a tracking code read in a customer's photo: "En tu foto leí el código SV…, ¿es ese?".

worker/photo_followup.py reads a stored photo (OCR) and, when it finds a code, makes it re-enter the customer's
inbox as a PHOTO_TEXT message whose text is the code; the engine hands that message here. The question is the
one the bot asks about a typed code that reads two ways (chatbot/dialog/tracking.py `confirm_code`): the same
buttons ("Sí" = `pkg:<code>`, "No" = `code_no`) and the same state (AWAITING_CODE_CONFIRM), so "Sí" (tapped or
typed) tracks the package and "No" asks the customer to type the code.

Nothing is asked (the message stays silent, its routing says why) when:
- a person has the conversation or a case waits for one: the agent sees the photo and the code read;
- the photo belongs to an album the bot already asked about: one question per album, about the first code
  read (the photos are read one by one, each may be another receipt, but a second "¿es ese?" a second later
  would talk over the first; the other codes are on their media rows for an agent);
- the customer already looked at that package this session (a caption with the code was answered already);
- the logistics core knows no such package: a misread code is better left unsaid (the photo's own reply
  already asked the customer to type the code).

Failure policy: the core being down does not stop the question (the answer to "Sí" will say the core is
down); nothing else here does I/O.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.events import InboundMessage
from channels.outbound import Buttons, Choice, OutboundMessage
from chatbot.dialog.turn import Situation, State, wording
from chatbot.entities import extract_tracking_code
from core_api_client import CoreError
from services import ServiceContext
from services import tracking as tracking_service
from storage.dialogs import DialogState

log = logging.getLogger(__name__)

__all__ = ["answer"]

WITH_A_HUMAN = ("escalated", "agent")


def answer(ctx: ServiceContext, ds: DialogState, situation: Situation, message: InboundMessage, moment: int,
           window_s: int) -> tuple[list[OutboundMessage], dict[str, Any]]:
    """The replies to a PHOTO_TEXT message and its stored routing (`answer` says which case of the module doc).

    `moment` is when the customer sent the photo; `window_s` the album window (ALBUM_WINDOW_S). Updates `ds`."""
    code = extract_tracking_code(message.text or "")
    routing: dict[str, Any] = {"stage": "ocr", "intent": "photo_code", "kind": message.kind.value}
    if code is None:
        return [], {**routing, "answer": "no_code"}
    if situation.status in WITH_A_HUMAN:
        return [], {**routing, "answer": "with_person"}
    if ds.photo_code_at and abs(moment - ds.photo_code_at) <= window_s:
        ds.photo_code_at = max(ds.photo_code_at, moment)  # the album goes on
        return [], {**routing, "stage": "album", "answer": "album"}
    if code in ds.packages:
        ds.photo_code_at = moment
        return [], {**routing, "answer": "already_tracked"}
    try:
        known = tracking_service.exists(ctx, code)
    except CoreError as exc:  # asked anyway: the answer to "Sí" tells the customer the core is down
        log.warning("core unavailable while checking a photo's code: %s", type(exc).__name__)
        known = True
    if not known:
        return [], {**routing, "answer": "unknown_code"}
    w = wording()["code_confirm"]
    choices = (Choice(f"pkg:{code}", w["yes"]), Choice("code_no", w["no"]))
    ds.photo_code_at = moment
    ds.state = State.AWAITING_CODE_CONFIRM.value
    ds.options, ds.option_titles = [c.id for c in choices], [c.title for c in choices]
    ds.code_fragment, ds.code_fragment_at = None, 0
    ds.last_intent = "track_package"
    ds.not_understood = 0
    return [Buttons(body=str(w["photo"]).format(code=code), buttons=choices)], {**routing, "answer": "asked"}
