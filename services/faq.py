"""The company's policies and frequently asked questions, as its admin wrote them.

A company's FAQ is data (storage/faq_versions.py: every version kept, the
admin edits it in the console, faq_data/<tenant>.yaml is where a company
starts). The worker reads the current version through a per-process cache
and hands it to the services in `ServiceContext.faq`; a context without one
(tests, tools) reads faq_data/<tenant>.yaml, once per process. Policy and FAQ
answers are sent as written but short: at most MAX_LINES lines at a time. A
longer text is cut after whole paragraphs (else lines, else sentences, never
inside one), sent with "¿Quieres más detalles?" and the buttons Sí
(`more:<ref>`) / No (`more_no`); `more_details(ctx, ref)` is the rest for the
"Sí". `faq_search` ranks FAQ entries by keyword and question overlap so the
LLM can be grounded on the company's answers only. A missing or malformed file
raises `FaqDataError` naming the file; a topic the company has not written
raises `PolicyMissing` (`has_policy` asks first).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from rapidfuzz import fuzz

from channels.limits import INTERACTIVE_BODY_MAX
from channels.outbound import Buttons, Choice, OutboundMessage, Text
from services import ServiceContext, wording
from services.normalize import fold_words
from storage.faq_content import FAQ_DIR as FAQ_DIR  # the names callers know from this module
from storage.faq_content import FaqData as FaqData
from storage.faq_content import FaqDataError as FaqDataError
from storage.faq_content import FaqEntry as FaqEntry
from storage.faq_content import read_file

POLICY_TOPICS = ("requirements", "prohibited", "unclaimed_policy", "refund", "payment", "payment_methods",
                 "paid_sender", "pickup_by_other")
# A question's own text, when the company has not written it, falls back to the text of its topic.
POLICY_FALLBACK = {"prohibited": "requirements", "payment_methods": "payment", "paid_sender": "payment",
                   "pickup_by_other": "pickup"}
MAX_LINES = 6  # lines of one answer on a phone; the rest waits for "¿Quieres más detalles?"
LINE_CHARS = 70  # a longer line wraps on a phone: it counts as one line per LINE_CHARS characters
MORE_PREFIX, MORE_NO = "more", "more_no"  # ids of the Sí / No buttons after a cut answer
PERSON_YES = "human_yes"  # id of the Sí button of `policy_with_person` (its No is MORE_NO)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[¿¡(*_\"A-ZÁÉÍÓÚÑ0-9•])")
# Words that say nothing about the topic of a question.
_STOPWORDS = frozenset(
    "a al como con cual de del el en es hay la las lo los me mi mis para por que se si su sus te tu un una y yo".split()
)
KEYWORD_MIN_RATIO, MIN_SCORE = 85, 0.6


class PolicyMissing(FaqDataError):  # noqa: N818 - reads as "the policy is missing"
    """The company has not written its text on a topic (a new company starts with none)."""


@cache
def load_faq(tenant_slug: str, directory: Path = FAQ_DIR) -> FaqData:
    """The tenant's seed file faq_data/<tenant_slug>.yaml (cached for the life of the process)."""
    return read_file(tenant_slug, directory)


def data(ctx: ServiceContext) -> FaqData:
    """The company's FAQ for this message: the stored version the caller read, else its seed file."""
    return ctx.faq if ctx.faq is not None else load_faq(ctx.tenant_slug)


def policy_line(ctx: ServiceContext, key: str) -> str | None:
    """One policy text of the tenant by key (e.g. "pickup", "refund_requirement"); None when not written."""
    value = data(ctx).policies.get(key)
    return str(value).strip() if value else None


def policy_text(ctx: ServiceContext, topic: str) -> str:
    """The company's whole text on `topic` as written in faq_data (requirements include the prohibited items)."""
    if topic not in POLICY_TOPICS:
        raise ValueError(f"unknown policy topic {topic!r}; expected one of {', '.join(POLICY_TOPICS)}")
    faq = data(ctx)
    prohibited = _prohibited(faq)
    if topic == "prohibited" and prohibited:
        return prohibited
    text = policy_line(ctx, topic) if topic != "prohibited" else None
    text = text or (policy_line(ctx, POLICY_FALLBACK[topic]) if topic in POLICY_FALLBACK else None)
    if text is None:
        raise PolicyMissing(f"{faq.source}: policies has no {topic!r} text")
    if topic == "requirements" and prohibited:  # right after the first paragraph: within the first six lines
        first, _, rest = text.partition("\n\n")
        text = "\n\n".join(part for part in (first, prohibited, rest) if part)
    return text


def has_policy(ctx: ServiceContext, topic: str) -> bool:
    """Whether the company has written a text the customer can get on `topic`."""
    try:
        policy_text(ctx, topic)
    except PolicyMissing:
        return False
    return True


def _prohibited(faq: FaqData) -> str | None:
    """The items that may not be sent, in one sentence: "⚠️ *No aceptamos:* dinero en efectivo, … ni animales vivos."."""
    items = [str(item).strip() for item in faq.policies.get("prohibited") or [] if str(item).strip()]
    if not items:
        return None
    items = [items[0][:1].lower() + items[0][1:], *(i[:1].lower() + i[1:] for i in items[1:])]
    w = wording()["faq"]
    listed = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {w['prohibited_last']} {items[-1]}"
    return str(w["prohibited"]).format(items=listed)


def policy_answer(ctx: ServiceContext, topic: str) -> list[OutboundMessage]:
    """The company's policy on `topic`, at most MAX_LINES lines; a longer text offers the rest (`more_details`)."""
    return short_answer(policy_text(ctx, topic), f"policy:{topic}")


def policy_with_person(ctx: ServiceContext, topic: str) -> list[OutboundMessage]:
    """A policy that a person confirms (pickup_by_other): its text, then "¿Quieres que te comunique con un
    asesor?" with Sí (PERSON_YES) / No (MORE_NO). A longer text is cut like any answer, before the offer."""
    answer = policy_answer(ctx, topic)
    w = wording()["faq"]["person"]
    buttons = (Choice(PERSON_YES, w["yes"]), Choice(MORE_NO, w["no"]))
    last = answer[-1]
    if isinstance(last, Text) and len(last.body) + len(w["ask"]) + 2 <= INTERACTIVE_BODY_MAX:
        return [*answer[:-1], Buttons(body=f"{last.body}\n\n{w['ask']}", buttons=buttons)]
    return [*answer, Buttons(body=w["ask"], buttons=buttons)]


def entry_answer(entry: FaqEntry) -> list[OutboundMessage]:
    """One FAQ entry's answer, at most MAX_LINES lines; a longer text offers the rest (`more_details`)."""
    return short_answer(entry.answer, f"faq:{entry.id}")


def more_details(ctx: ServiceContext, ref: str) -> list[OutboundMessage]:
    """The rest of a cut answer (`ref` from its Sí button: "policy:<topic>" or "faq:<id>"); empty when unknown.

    A company text changed since the cut is cut again: the customer gets what follows its first part now.
    """
    kind, _, key = ref.partition(":")
    text: str | None = None
    if kind == "policy" and key in POLICY_TOPICS and has_policy(ctx, key):
        text = policy_text(ctx, key)
    elif kind == "faq":
        text = next((e.answer for e in data(ctx).entries if e.id == key), None)
    rest = split_answer(text)[1] if text else None
    return [Text(rest)] if rest else []


def short_answer(text: str, ref: str) -> list[OutboundMessage]:
    """`text` as the customer reads it: whole when short, else its first part and "¿Quieres más detalles?"."""
    first, rest = split_answer(text)
    if rest is None:
        return [Text(first)]
    w = wording()["faq"]["more"]
    buttons = (Choice(f"{MORE_PREFIX}:{ref}", w["yes"]), Choice(MORE_NO, w["no"]))
    body = f"{first}\n\n{w['ask']}"
    if len(body) > INTERACTIVE_BODY_MAX:  # too long for an interactive body: the part, then the question
        return [Text(first), Buttons(body=w["ask"], buttons=buttons)]
    return [Buttons(body=body, buttons=buttons)]


def split_answer(text: str, max_lines: int = MAX_LINES) -> tuple[str, str | None]:
    """The first part of `text` (at most `max_lines` lines) and the rest (None when nothing is left).

    The first part takes whole paragraphs (blank-line separated) while they fit; when even the first
    paragraph is longer, it is cut between its lines, and a line longer than a part between sentences.
    A single sentence longer than a part is kept whole: a sentence is never cut.
    """
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]
    if not paragraphs:
        return "", None
    taken, used = 0, 0
    for paragraph in paragraphs:
        cost = lines(paragraph) + (1 if taken else 0)  # with the blank line before it
        if used + cost > max_lines:
            break
        taken, used = taken + 1, used + cost
    if taken == 0:
        first, remainder = _cut(paragraphs[0], max_lines)
        rest = "\n\n".join(([remainder] if remainder else []) + paragraphs[1:])
        return first, rest or None
    return "\n\n".join(paragraphs[:taken]), "\n\n".join(paragraphs[taken:]) or None


def lines(text: str) -> int:
    """How many lines `text` takes on a phone: its lines, a long one counted once per LINE_CHARS characters."""
    return sum(max(1, -(-len(line) // LINE_CHARS)) for line in text.split("\n"))


def _cut(paragraph: str, max_lines: int) -> tuple[str, str]:
    """A paragraph longer than `max_lines`: its first lines (or sentences) that fit, and what is left."""
    pieces: list[tuple[str, str]] = []  # (text, what joins it to the piece before: a line break or a space)
    for line in paragraph.split("\n"):
        sentences = _SENTENCE_END.split(line) if lines(line) > max_lines else [line]
        pieces += [(sentence, "\n" if i == 0 else " ") for i, sentence in enumerate(sentences)]
    first = pieces[0][0]
    for count, (piece, joiner) in enumerate(pieces[1:], start=1):
        if lines(first + joiner + piece) > max_lines:
            rest = pieces[count][0] + "".join(j + p for p, j in pieces[count + 1:])
            return first, rest
        first += joiner + piece
    return first, ""


def _words(text: str) -> list[str]:
    return [w for w in fold_words(text).split() if w not in _STOPWORDS]


def _keyword_hit(keyword: str, folded_text: str, words: list[str]) -> bool:
    """A several-word keyword appears as such; a one-word keyword matches a word, typos allowed."""
    folded = fold_words(keyword)
    if not folded:
        return False
    if " " in folded:
        return f" {folded} " in f" {folded_text} "
    return any(fuzz.ratio(folded, word) >= KEYWORD_MIN_RATIO for word in words)


def faq_search(ctx: ServiceContext, text: str, limit: int = 3) -> list[FaqEntry]:
    """The company's FAQ entries closest to `text`, best first (`search`)."""
    return search(data(ctx), text, limit)


def entry_for(faq: FaqData, text: str) -> FaqEntry | None:
    """The entry the bot answers a message it could not place with: among the three closest, the first one
    with a keyword written as such in the message (no accents, no punctuation); None when none has."""
    words = f" {fold_words(text)} "
    for entry in search(faq, text, limit=3):
        if any(f" {fold_words(k)} " in words for k in entry.keywords if fold_words(k)):
            return entry
    return None


def search(faq: FaqData, text: str, limit: int = 3) -> list[FaqEntry]:
    """The FAQ entries closest to `text`, best first: one point per keyword hit plus question similarity."""
    words = _words(text)
    if not words:
        return []
    folded_text, query = fold_words(text), " ".join(words)
    scored = []
    for entry in faq.entries:
        hits = sum(_keyword_hit(k, folded_text, words) for k in entry.keywords)
        similarity = fuzz.token_set_ratio(query, " ".join(_words(entry.question))) / 100
        score = hits + similarity
        if score >= MIN_SCORE and (hits or similarity >= MIN_SCORE):
            scored.append((score, entry))
    scored.sort(key=lambda pair: -pair[0])
    return [entry for _score, entry in scored[:limit]]
