"""What the bot says when a customer sends a photo, video, document, sticker or voice note; albums as one turn.

WhatsApp delivers an album (several photos sent together) as one webhook per
photo, seconds apart, each with its own provider timestamp. A customer's
messages are handled one at a time and in order, with one dialog state, so the
album is read from that state: a photo, video, document or sticker whose time
is within `ALBUM_WINDOW_S` of the customer's previous one, with nothing else
(text, a button, a voice note, a location) in between, belongs to the same
album (`DialogState.media_at`). Only the album's first message is answered;
the others are silent, their routing stored with the stage "album", so the
turn counts as handled and a retried job answers nothing again. Reactions,
system notices and the text read from a photo (OCR) neither start nor end an
album.

A caption is the customer's words: the engine routes the first one of an
album the rules understand like typed text ("este es el paquete dañado" opens
the complaint), and only once per album (`DialogState.album_caption`). One
the bot cannot place ("Taj Mahal") leaves the photo's own reply.

The reply, by context (`reply`; wording in services/texts/dialog.yaml,
`media.*`):
- a person has the chat: nothing (the agent sees the file in the console);
- a case waits for a person: it goes with the case;
- a complaint in progress: it goes with the complaint (and the code is asked
  again when the bot was asking for it);
- otherwise a photo, video or document: thanks, and what it usually is (a
  receipt or a label: "escríbeme el código"), with buttons to track a package
  or talk to a person; a sticker: a light line;
- a voice note: nothing when a transcriber is configured (the transcript comes
  back as its own message and that turn answers; worker/media_followup.py says
  so honestly when it fails); without one, honestly that the bot cannot listen
  to audios, with a button to talk to a person. A voice note is never part of
  an album.

Failure policy: pure functions over the message and the session; nothing here
raises on a message's content or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels.events import InboundMessage, MessageKind
from channels.outbound import Buttons, Choice, OutboundMessage, Text
from chatbot.dialog.turn import Situation, State, state_of, wording
from storage.dialogs import DialogState

__all__ = ["AlbumTurn", "album_turn", "caption_answered", "reply"]

GROUPED = frozenset({"image", "video", "document", "sticker"})  # what an album is made of
CAPTIONED = frozenset({"image", "video", "document"})  # what WhatsApp lets a customer caption
# Not the customer's own words or files: they neither start nor end an album (photo_text: a code read from a photo).
PASSIVE_KINDS = frozenset({MessageKind.REACTION.value, MessageKind.SYSTEM.value, "photo_text"})
TRACK, HUMAN = "menu_track", "menu_human"  # the main menu's options (chatbot/dialog/dispatch.py CHOICES)


@dataclass(frozen=True)
class AlbumTurn:
    """Where a message stands in its album."""

    first: bool  # the album's first message, or no album at all: it may be answered
    caption: str | None = None  # a caption to route as the turn's text (the album's caption not answered yet)


def album_turn(ds: DialogState, message: InboundMessage, moment: int, window_s: int) -> AlbumTurn:
    """Place the message in the customer's album and update the session (`media_at`, `album_caption`).

    `moment` is when the customer sent it (the provider's timestamp, or the clock when that is absurd)."""
    if message.kind is not MessageKind.MEDIA:
        if message.kind.value not in PASSIVE_KINDS:
            ds.media_at, ds.album_caption = 0, False
        return AlbumTurn(first=True)
    media_type = message.media_type or ""
    if media_type not in GROUPED:  # a voice note (or a type WhatsApp adds later) is a turn of its own
        ds.media_at, ds.album_caption = 0, False
        return AlbumTurn(first=True)
    joined = ds.media_at > 0 and abs(moment - ds.media_at) <= window_s
    if joined:
        ds.media_at = max(ds.media_at, moment)
    else:
        ds.media_at, ds.album_caption = moment, False
    text = (message.text or "").strip()
    caption = text if text and media_type in CAPTIONED and not ds.album_caption else None
    return AlbumTurn(first=not joined, caption=caption)


def caption_answered(ds: DialogState) -> None:
    """The album's caption was answered as text: a later caption of the same album is not."""
    ds.album_caption = True


def reply(message: InboundMessage, ds: DialogState, situation: Situation, album: AlbumTurn, *,
          listens: bool) -> tuple[list[OutboundMessage], dict[str, Any]]:
    """The replies to a media message whose caption (if any) was not answered as text, and what to add to its
    stored routing (`answer`: which reply; `stage` "album" for a later message of an album).

    `listens`: voice notes are transcribed in this deployment (llm/transcription.py `configured`)."""
    w = wording()["media"]
    media_type = message.media_type or ""
    name = wording()["media_names"].get(media_type, wording()["media_default"])
    if media_type == "audio":
        if listens:
            return [], {"answer": "awaiting_transcript"}
    elif not album.first:
        return [], {"stage": "album", "answer": "album"}
    if situation.status == "agent":
        return [], {"answer": "with_agent"}
    if situation.status == "escalated":
        case = str((ds.handoff or {}).get("case") or situation.open_case or "")
        body = w["with_case"].format(case=case) if case else w["with_person"]
        return [Text(body)], {"answer": "with_case"}
    if media_type == "audio":
        return [Buttons(body=w["voice_unheard"], buttons=(Choice(HUMAN, w["human"]),))], {"answer": "voice_unheard"}
    if media_type == "sticker":
        return [Text(w["sticker"])], {"answer": "sticker"}
    state = state_of(ds)
    if ds.purpose == "complaint" and state is State.AWAITING_CODE:
        return [Text(w["complaint_code"])], {"answer": "complaint"}
    if state is State.AWAITING_COMPLAINT_CHECK:
        return [Text(w["complaint"])], {"answer": "complaint"}
    body = w["received"].format(media=name)
    return [Buttons(body=body, buttons=(Choice(TRACK, w["track"]), Choice(HUMAN, w["human"])))], \
        {"answer": "received"}
