"""Make a message fit WhatsApp's documented limits instead of having Meta reject it.

Meta rejects (error 100/131009) a text over 4096 characters, a fourth reply
button, a 21-character button title and so on (CONTRACT §2.3). `fit` turns
one message into the list of messages that say the same thing within those
limits: long text is split at paragraph, line, sentence or word boundaries;
titles are cut at a word boundary with "…"; choices are mapped by count the
way Botpress does (1–3 reply buttons, 4–10 a list, 11+ several lists). Pure
functions, no I/O; the simulator applies the same rules so it shows what
WhatsApp would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from channels.outbound import Buttons, Choice, ChoiceList, OutboundMessage, Text

log = logging.getLogger(__name__)

TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
MAX_BUTTONS = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
LIST_ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
SECTION_TITLE_MAX = 24

# Fallback wording when a caller gave none (the conversation layer normally sets its own).
DEFAULT_LIST_BUTTON = "Ver opciones"
MORE_OPTIONS_BODY = "Más opciones ({page}/{pages})"
ELLIPSIS = "…"

# Where a long text may be cut, best first: each match's start ends one part, its end starts the next.
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraph
    re.compile(r"\n\s*"),  # line
    re.compile(r"(?<=[.!?…:;])\s+"),  # sentence
    re.compile(r"\s+"),  # word
)
_MARKDOWN = re.compile(r"[*_~`]")
_SPACES = re.compile(r"\s+")


def _cut(text: str, limit: int) -> tuple[int, int]:
    """Where to end the first part of `text` (≤ limit) and where the rest starts.

    A boundary of a better kind wins if it keeps at least half of the limit in the
    first part, so a paragraph break near the start does not create a tiny message.
    """
    best: tuple[int, int] | None = None
    for pattern in _BOUNDARIES:
        last: tuple[int, int] | None = None
        for match in pattern.finditer(text):
            if match.start() > limit:
                break
            if match.start() > 0:
                last = (match.start(), match.end())
        if last is not None:
            if last[0] >= limit // 2:
                return last
            if best is None or last[0] > best[0]:
                best = last
    return best if best is not None else (limit, limit)


def split_text(text: str, limit: int = TEXT_MAX) -> list[str]:
    """Split `text` into parts of at most `limit` characters, at the most natural boundary."""
    rest = text.strip()
    parts: list[str] = []
    while len(rest) > limit:
        end, start = _cut(rest, limit)
        parts.append(rest[:end].rstrip())
        rest = rest[start:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts


def split_tail(text: str, limit: int) -> tuple[str, str]:
    """Split `text` into (head, tail) with the tail ≤ `limit`: the last paragraph, line, sentence...

    Used when an interactive body is too long: the head goes first as text, the tail
    (usually the question the buttons answer) stays with the buttons.
    """
    text = text.strip()
    if len(text) <= limit:
        return "", text
    for pattern in _BOUNDARIES:
        for match in pattern.finditer(text):
            tail = text[match.end() :].strip()
            if tail and len(tail) <= limit:
                return text[: match.start()].rstrip(), tail
    return text[:-limit].rstrip(), text[-limit:].strip()


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at a word boundary, ending with "…" when cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    keep = limit - len(ELLIPSIS)
    room = text[:keep]
    space = room.rfind(" ")
    if not text[keep].isspace() and space >= keep // 2:
        room = room[:space]  # drop the word that would be cut in half
    return room.rstrip(" ,;:.-–—") + ELLIPSIS


def clean_title(title: str, limit: int) -> str:
    """A title WhatsApp shows as-is: markdown characters removed, one line, cut to `limit`."""
    plain = _SPACES.sub(" ", _MARKDOWN.sub("", title)).strip()
    return truncate(plain, limit)


def _unique(titles: Sequence[str], limit: int) -> list[str]:
    """Titles made distinct (Meta rejects duplicate button titles) by numbering repeats."""
    seen: set[str] = set()
    out: list[str] = []
    for title in titles:
        candidate, n = title, 2
        while candidate in seen:
            suffix = f" {n}"
            candidate = truncate(title, limit - len(suffix)) + suffix
            n += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _fit_id(choice_id: str, limit: int) -> str:
    if len(choice_id) <= limit:
        return choice_id
    log.warning("choice id of %s characters cut to %s; replies carry the cut id", len(choice_id), limit)
    return choice_id[:limit]


def _choices(choices: Iterable[Choice], title_max: int, id_max: int, with_description: bool) -> list[Choice]:
    items = list(choices)
    titles = [clean_title(c.title, title_max) or f"Opción {i + 1}" for i, c in enumerate(items)]
    fitted: list[Choice] = []
    for choice, title in zip(items, _unique(titles, title_max), strict=True):
        description = None
        if with_description and choice.description and choice.description.strip():
            description = truncate(_SPACES.sub(" ", choice.description), ROW_DESCRIPTION_MAX)
        fitted.append(Choice(id=_fit_id(choice.id, id_max), title=title, description=description))
    return fitted


def _optional(text: str | None, limit: int) -> str | None:
    if text is None or not text.strip():
        return None
    return truncate(_SPACES.sub(" ", text), limit)


def _interactive_body(body: str) -> tuple[list[OutboundMessage], str]:
    """Text parts to send first (if the body is too long) and the body to keep on the interactive."""
    head, tail = split_tail(body, INTERACTIVE_BODY_MAX)
    lead: list[OutboundMessage] = [Text(part) for part in split_text(head)] if head else []
    return lead, tail


def _fit_buttons(message: Buttons, list_button_label: str) -> list[OutboundMessage]:
    if not message.buttons:
        return [Text(part) for part in split_text(message.body)]
    if len(message.buttons) > MAX_BUTTONS:
        as_list = ChoiceList(
            body=message.body,
            button_label=list_button_label,
            rows=message.buttons,
            header=message.header,
            footer=message.footer,
        )
        return _fit_list(as_list)
    lead, body = _interactive_body(message.body)
    buttons = _choices(message.buttons, BUTTON_TITLE_MAX, BUTTON_ID_MAX, with_description=False)
    fitted = Buttons(
        body=body,
        buttons=tuple(buttons),
        header=_optional(message.header, HEADER_MAX),
        footer=_optional(message.footer, FOOTER_MAX),
    )
    return [*lead, fitted]


def _fit_list(message: ChoiceList) -> list[OutboundMessage]:
    if not message.rows:
        return [Text(part) for part in split_text(message.body)]
    lead, body = _interactive_body(message.body)
    label = clean_title(message.button_label, LIST_BUTTON_MAX) or DEFAULT_LIST_BUTTON
    section = _optional(message.section_title, SECTION_TITLE_MAX)
    footer = _optional(message.footer, FOOTER_MAX)
    rows = list(message.rows)
    pages = [rows[i : i + LIST_ROWS_MAX] for i in range(0, len(rows), LIST_ROWS_MAX)]
    out: list[OutboundMessage] = list(lead)
    for number, page in enumerate(pages, start=1):
        out.append(
            ChoiceList(
                body=body if number == 1 else MORE_OPTIONS_BODY.format(page=number, pages=len(pages)),
                button_label=label,
                rows=tuple(_choices(page, ROW_TITLE_MAX, ROW_ID_MAX, with_description=True)),
                header=_optional(message.header, HEADER_MAX) if number == 1 else None,
                footer=footer,
                section_title=section,
            )
        )
    return out


def fit(message: OutboundMessage, *, list_button_label: str = DEFAULT_LIST_BUTTON) -> list[OutboundMessage]:
    """The messages to send, in order, so that each one is within WhatsApp's limits.

    Most messages come back unchanged as a one-item list. `list_button_label` is
    the list button used when more than three reply buttons become a list.
    Locations and templates are returned as they are (their limits are the
    template's, checked by Meta at approval).
    """
    if isinstance(message, Text):
        return [Text(part) for part in split_text(message.body)]
    if isinstance(message, Buttons):
        return _fit_buttons(message, list_button_label)
    if isinstance(message, ChoiceList):
        return _fit_list(message)
    return [message]
