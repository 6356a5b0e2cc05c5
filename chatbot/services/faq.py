"""The company's policies and frequently asked questions, from faq_data/<tenant>.yaml.

The file is the company's own wording (editable by a non-programmer; its
format is described at its top) and is read once per process. Policy answers
are sent as written; `faq_search` ranks FAQ entries by keyword and question
overlap so the LLM can later be grounded on the company's answers only. A
missing or malformed file raises `FaqDataError` naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import fuzz

from channels.outbound import OutboundMessage, Text
from chatbot.services import ServiceContext, wording
from chatbot.services.catalog import fold

FAQ_DIR = Path(__file__).resolve().parents[2] / "faq_data"
POLICY_TOPICS = ("requirements", "unclaimed_policy", "refund", "payment")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Words that say nothing about the topic of a question.
_STOPWORDS = frozenset(
    "a al como con cual de del el en es hay la las lo los me mi mis para por que se si su sus te tu un una y yo".split()
)
KEYWORD_MIN_RATIO, MIN_SCORE = 85, 0.6


class FaqDataError(ValueError):
    """faq_data/<tenant>.yaml is missing or not in the expected format; the message names the file."""


@dataclass(frozen=True)
class FaqEntry:
    id: str
    question: str
    answer: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class FaqData:
    path: Path
    policies: dict[str, Any]
    entries: tuple[FaqEntry, ...]


def _entry(path: Path, raw: Any, index: int) -> FaqEntry:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("id", "question", "answer")):
        raise FaqDataError(f"{path}: faq entry #{index + 1} needs text fields id, question and answer")
    keywords = raw.get("keywords") or []
    if not isinstance(keywords, list):
        raise FaqDataError(f"{path}: keywords of faq entry {raw['id']!r} must be a list")
    return FaqEntry(raw["id"], raw["question"].strip(), raw["answer"].strip(), tuple(str(k) for k in keywords))


@cache
def load_faq(tenant_slug: str, directory: Path = FAQ_DIR) -> FaqData:
    """The tenant's policies and FAQ (cached for the life of the process)."""
    if not _SLUG.match(tenant_slug):
        raise FaqDataError(f"tenant slug {tenant_slug!r} cannot name a faq_data file")
    path = directory / f"{tenant_slug}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FaqDataError(f"FAQ data for tenant {tenant_slug!r} not found: create {path}") from None
    except yaml.YAMLError as exc:
        raise FaqDataError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("policies"), dict):
        raise FaqDataError(f"{path}: needs a 'policies' mapping and a 'faq' list")
    faq = data.get("faq") or []
    if not isinstance(faq, list):
        raise FaqDataError(f"{path}: 'faq' must be a list of entries")
    return FaqData(path, data["policies"], tuple(_entry(path, raw, i) for i, raw in enumerate(faq)))


def policy_line(ctx: ServiceContext, key: str) -> str | None:
    """One policy text of the tenant by key (e.g. "pickup", "refund_requirement"); None when not written."""
    value = load_faq(ctx.tenant_slug).policies.get(key)
    return str(value).strip() if value else None


def policy_answer(ctx: ServiceContext, topic: str) -> list[OutboundMessage]:
    """The company's policy on `topic` (requirements include the prohibited items), as written in faq_data."""
    if topic not in POLICY_TOPICS:
        raise ValueError(f"unknown policy topic {topic!r}; expected one of {', '.join(POLICY_TOPICS)}")
    data = load_faq(ctx.tenant_slug)
    text = policy_line(ctx, topic)
    if text is None:
        raise FaqDataError(f"{data.path}: policies has no {topic!r} text")
    prohibited = data.policies.get("prohibited") or []
    if topic == "requirements" and prohibited:
        items = "\n".join(str(wording()["faq"]["item"]).format(item=item) for item in prohibited)
        text = f"{text}\n\n{wording()['faq']['prohibited_title']}\n{items}"
    return [Text(text)]


def _words(text: str) -> list[str]:
    return [w for w in fold(text).split() if w not in _STOPWORDS]


def _keyword_hit(keyword: str, folded_text: str, words: list[str]) -> bool:
    """A several-word keyword appears as such; a one-word keyword matches a word, typos allowed."""
    folded = fold(keyword)
    if not folded:
        return False
    if " " in folded:
        return f" {folded} " in f" {folded_text} "
    return any(fuzz.ratio(folded, word) >= KEYWORD_MIN_RATIO for word in words)


def faq_search(ctx: ServiceContext, text: str, limit: int = 3) -> list[FaqEntry]:
    """The FAQ entries closest to `text`, best first: one point per keyword hit plus question similarity."""
    words = _words(text)
    if not words:
        return []
    folded_text, query = fold(text), " ".join(words)
    scored = []
    for entry in load_faq(ctx.tenant_slug).entries:
        hits = sum(_keyword_hit(k, folded_text, words) for k in entry.keywords)
        similarity = fuzz.token_set_ratio(query, " ".join(_words(entry.question))) / 100
        score = hits + similarity
        if score >= MIN_SCORE and (hits or similarity >= MIN_SCORE):
            scored.append((score, entry))
    scored.sort(key=lambda pair: -pair[0])
    return [entry for _score, entry in scored[:limit]]
