"""A company's policies and FAQ as values: what a seed file (faq_data/<slug>.yaml) or a stored version holds.

`FaqData` is what the bot reads (services/faq.py): `policies` maps a topic
("requirements", "refund", ...) to the company's text (for "prohibited", a
list of items) and `entries` are the questions with their answers and the
keywords customers use. `read_file` loads and checks a seed file (a missing
or malformed file raises `FaqDataError` naming the file); `from_json` reads
a stored version (already checked when it was written). `changes` says what
one version changed against the one before, for the console's history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FAQ_DIR = Path(__file__).resolve().parents[1] / "faq_data"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class FaqDataError(ValueError):
    """faq_data/<tenant>.yaml is missing or not in the expected format; the message names the file."""


@dataclass(frozen=True)
class FaqEntry:
    id: str  # short and stable: the "more details" button of a cut answer names it
    question: str
    answer: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class FaqData:
    source: str  # where it came from, for error messages: the file's path or "<tenant> FAQ version <n>"
    policies: dict[str, Any]
    entries: tuple[FaqEntry, ...]

    def to_json(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(policies, entries) as stored in tenant_faq_versions."""
        return dict(self.policies), [{"id": e.id, "question": e.question, "answer": e.answer,
                                      "keywords": list(e.keywords)} for e in self.entries]


def empty(source: str) -> FaqData:
    """A company that has written nothing yet: the bot says it does not have the information."""
    return FaqData(source, {}, ())


def seed_path(tenant_slug: str, directory: Path = FAQ_DIR) -> Path:
    if not _SLUG.match(tenant_slug):
        raise FaqDataError(f"tenant slug {tenant_slug!r} cannot name a faq_data file")
    return directory / f"{tenant_slug}.yaml"


def read_file(tenant_slug: str, directory: Path = FAQ_DIR) -> FaqData:
    """The tenant's seed file, checked: FaqDataError (naming the file) when missing or malformed."""
    path = seed_path(tenant_slug, directory)
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
    entries = tuple(_entry(path, raw, i) for i, raw in enumerate(faq))
    if len({e.id for e in entries}) != len(entries):
        raise FaqDataError(f"{path}: two faq entries have the same id")
    return FaqData(str(path), data["policies"], entries)


def _entry(path: Path, raw: Any, index: int) -> FaqEntry:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("id", "question", "answer")):
        raise FaqDataError(f"{path}: faq entry #{index + 1} needs text fields id, question and answer")
    keywords = raw.get("keywords") or []
    if not isinstance(keywords, list):
        raise FaqDataError(f"{path}: keywords of faq entry {raw['id']!r} must be a list")
    return FaqEntry(raw["id"], raw["question"].strip(), raw["answer"].strip(), tuple(str(k) for k in keywords))


def from_json(source: str, policies: dict[str, Any], entries: list[dict[str, Any]]) -> FaqData:
    """A stored version's content."""
    return FaqData(source, dict(policies), tuple(
        FaqEntry(str(e["id"]), str(e["question"]), str(e["answer"]), tuple(str(k) for k in e.get("keywords") or []))
        for e in entries))


def same_content(a: FaqData, b: FaqData) -> bool:
    return a.to_json() == b.to_json()


@dataclass(frozen=True)
class Changes:
    """What a version changed against the one before it (questions by their text, policies by topic)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()  # topics whose text changed (added, edited or emptied)

    @property
    def nothing(self) -> bool:
        return not (self.added or self.removed or self.edited or self.policies)


def changes(before: FaqData | None, after: FaqData) -> Changes:
    """The entries added, removed and edited (an entry keeps its id when edited) and the topics changed."""
    old = {e.id: e for e in before.entries} if before is not None else {}
    new = {e.id: e for e in after.entries}
    old_policies = before.policies if before is not None else {}
    topics = sorted(k for k in set(old_policies) | set(after.policies) if old_policies.get(k) != after.policies.get(k))
    return Changes(
        added=tuple(e.question for i, e in new.items() if i not in old),
        removed=tuple(e.question for i, e in old.items() if i not in new),
        edited=tuple(e.question for i, e in new.items() if i in old and old[i] != e),
        policies=tuple(topics),
    )
