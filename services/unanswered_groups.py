"""Groups of similar messages the bot did not answer well (design 12.3.2): the improvement loop's raw material.

A message (storage.unanswered) is masked (anything that looks like a phone
number, a tracking code, a DUI or an e-mail address becomes "•••"), folded
(no accents or case, typos of repeated letters squeezed: services.normalize)
and stripped of the words that say nothing about its topic ("hola", "por
favor", "de", ...). Messages with the same words in any order share a bucket;
the buckets, most frequent first, are clustered greedily: a bucket joins the
first group whose representative is at least `THRESHOLD` similar by
rapidfuzz's token-set ratio (typos and word order allowed), and when the two
differ much in length only if the shorter one says enough on its own ("envíos"
alone does not join "¿hacen envíos a Guatemala?"); else it starts a group.

Cost: one C-level comparison per (bucket, group). At most `MAX_BUCKETS`
buckets open groups; the rarer ones beyond that only join existing groups
(what joins none is counted in `Grouping.left_out`). bench/unanswered_groups.py
measures it (docs/BENCHMARKS.md).

Pure functions over rows, plus `for_period` that reads them (the console's
"Mejoras" page and the monthly report's improvement cases both call it).
Nothing here logs message text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import Connection
from rapidfuzz import fuzz, process

from services.normalize import MAX_CHARS, fold_words
from storage import unanswered
from storage.unanswered import Unanswered

THRESHOLD = 78  # token-set ratio (0-100) for two wordings to be the same question
MIN_WORDS_ALONE = 3  # a much shorter wording joins a longer one only when it has this many topic words
LENGTH_RATIO = 0.5  # below this ratio of topic words, the shorter wording needs MIN_WORDS_ALONE
MAX_BUCKETS = 3000  # distinct wordings that may open a group (the rest only join)
EXAMPLES = 5
PREFIX = 3  # letters of a word that index the groups using it
KEYWORDS = 4
MASK = "•••"

# Anything with three digits or more (phones, tracking codes, DUI, NIT, amounts), and e-mail addresses.
_PRIVATE = re.compile(r"\S+@\S+|[+#]?\w*(?:\d[\s.\-/]?){2,}\d\w*")
_REPEATED = re.compile(r"([a-z])\1{2,}")
# Words that say nothing about what was asked.
STOPWORDS = frozenset("""
a al algo alguien aqui asi bien buen buena buenas buenos como con cual cuando de del dia dias disculpe disculpa
el ella en es esa ese eso esta este esto estan favor gracias hay hola la las le les lo los me mi mis muy necesito
no nos o oiga para pero por porfa pregunta pues que quisiera quiero saber se senor senora señor si sr sra su sus
tardes te tengo tiene tu un una uno unos usted ustedes va vos y ya yo noches ok okay plis please
tienen hacen hace dan da dar puedo pueden puede podria podrian son ser fue estoy estan hola
""".split())


def mask(text: str) -> str:
    """The text as an admin may see it: numbers and codes that could name a person or a package hidden."""
    return " ".join((_PRIVATE.sub(MASK, text) if _private(text) else text).split())


def _private(text: str) -> bool:
    """Whether `text` may hold something to mask (most messages have neither digits nor "@": no regex then)."""
    return "@" in text or any(ch.isdigit() for ch in text)


def topic_words(text: str) -> list[str]:
    """The folded words of a (masked) text that say what it is about (a letter typed three times or more: once)."""
    text = text[:MAX_CHARS]
    folded = _REPEATED.sub(r"\1", fold_words(_PRIVATE.sub(" ", text) if _private(text) else text))
    return [w for w in folded.split() if w not in STOPWORDS and not w.isdigit()]


def _key(text: str) -> str:
    """The topic words, a plural's final "s" dropped ("bodegas" ~ "bodega"), sorted: what is compared."""
    return " ".join(sorted({w[:-1] if len(w) >= 5 and w.endswith("s") else w for w in topic_words(text)}))


def similar(a: str, b: str) -> bool:
    """Whether two bucket keys (sorted topic words) are the same question."""
    if not a or not b:
        return a == b
    return fuzz.token_set_ratio(a, b, score_cutoff=THRESHOLD) > 0 and _lengths_fit(a, b)


def _lengths_fit(a: str, b: str) -> bool:
    short, long = sorted((len(a.split()), len(b.split())))
    return short >= MIN_WORDS_ALONE or short > LENGTH_RATIO * long


@dataclass
class Group:
    """Similar messages of a period: how many, how the most frequent one reads, examples, when."""

    text: str  # the representative: the most frequent wording, masked
    key: str  # its topic words, sorted: what other messages are compared with
    count: int = 0
    previous: int = 0  # similar messages in the period before
    not_understood: int = 0
    escalations: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    examples: list[str] = field(default_factory=list)  # up to EXAMPLES distinct wordings, masked
    words: Counter[str] = field(default_factory=Counter)  # folded words -> messages using them

    @property
    def keywords(self) -> list[str]:
        """Words worth making FAQ keywords: those most of the group's messages use (as the bot compares them)."""
        common = [w for w, n in self.words.most_common() if n * 2 >= self.count]
        return (common or [w for w, _ in self.words.most_common(2)])[:KEYWORDS]

    @property
    def phrase(self) -> str:
        """The representative's topic words in their order: a phrase for the router ("envios guatemala")."""
        return " ".join(w for w in fold_words(self.text.replace(MASK, " ")).split()
                        if w not in STOPWORDS and not w.isdigit())

    @property
    def suggestion(self) -> str:
        """What the admin may do about it, in their words (the monthly report shows it too)."""
        if self.escalations > self.not_understood:
            return "Preparar una respuesta rápida para los agentes"
        return "Agregar una respuesta a las preguntas frecuentes"

    def _add(self, row: Unanswered, reading: _Reading) -> None:
        self.count += 1
        self.not_understood += row.kind == "not_understood"
        self.escalations += row.kind == "escalation"
        self.first_seen = min(self.first_seen or row.at, row.at)
        self.last_seen = max(self.last_seen or row.at, row.at)
        if len(self.examples) < EXAMPLES and reading.shown not in self.examples:
            self.examples.append(reading.shown)
        self.words.update(reading.words)


@dataclass(frozen=True)
class _Reading:
    """One distinct wording, read once however many customers sent it."""

    key: str
    shown: str  # masked
    words: frozenset[str]  # its folded topic words as FAQ keywords are compared (no plural dropped)

    @classmethod
    def of(cls, text: str) -> _Reading:
        shown = mask(text)
        words = frozenset(w for w in fold_words(shown.replace(MASK, " ")).split()
                          if w not in STOPWORDS and len(w) >= 3 and not w.isdigit())
        return cls(_key(text), shown, words)


@dataclass(frozen=True)
class Grouping:
    groups: list[Group]  # largest first
    total: int  # messages of the period
    previous_total: int  # messages of the period before
    left_out: int  # rare wordings beyond MAX_BUCKETS that joined no group (counted nowhere else)


def group(rows: Sequence[Unanswered], previous: Sequence[Unanswered] = (), *,
          max_buckets: int = MAX_BUCKETS) -> Grouping:
    """The period's messages in groups of similar ones, each with its count in the period before."""
    readings: dict[str, _Reading] = {}  # the same wording is read once
    buckets: dict[str, list[Unanswered]] = {}
    for row in sorted(rows, key=lambda r: r.at, reverse=True):  # newest first: examples are recent
        reading = readings.get(row.text)
        if reading is None:
            reading = readings[row.text] = _Reading.of(row.text)
        buckets.setdefault(reading.key, []).append(row)
    ordered = sorted(buckets.items(), key=lambda item: (-len(item[1]), item[0]))
    groups: list[Group] = []
    made = _Groups()  # the groups' keys, in the order of `groups` until they are sorted
    left_out = 0
    for index, (key, members) in enumerate(ordered):
        found = made.nearest(key)
        if found is None and index >= max_buckets:
            left_out += len(members)
            continue
        if found is None:
            groups.append(Group(text=readings[_representative(members)].shown, key=key))
            found = made.add(key)
        for row in members:
            groups[found]._add(row, readings[row.text])
    earlier: Counter[str] = Counter(readings[row.text].key if row.text in readings else _key(row.text)
                                    for row in previous)
    for key, n in earlier.items():
        found = made.nearest(key)
        if found is not None:
            groups[found].previous += n
    groups.sort(key=lambda g: (-g.count, g.key))
    return Grouping(groups, len(rows), len(previous), left_out)


def _representative(members: list[Unanswered]) -> str:
    """The wording that stands for a bucket: the one sent most often; among equals, one not in capitals that
    reads as a question ("¿Hacen envíos a Guatemala?" rather than "ENVIOS A GUATEMALA"), the shortest."""
    sent = Counter(row.text for row in members)
    return max(sent, key=lambda text: (sent[text], not _shouted(text), "?" in text, -len(text)))


def _shouted(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return sum(ch.isupper() for ch in letters) > 0.3 * len(letters)


class _Groups:
    """The groups' keys, with an index from each word's first letters to the groups using it: a wording is
    compared only with the groups sharing a word start with it (a typo after the third letter still matches)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._by_start: dict[str, list[int]] = {}

    def add(self, key: str) -> int:
        self.keys.append(key)
        for start in {w[:PREFIX] for w in key.split()}:
            self._by_start.setdefault(start, []).append(len(self.keys) - 1)
        return len(self.keys) - 1

    def nearest(self, key: str) -> int | None:
        """The group this wording belongs to: the most similar one, None when none is similar enough."""
        if not key:
            return self.keys.index("") if "" in self.keys else None
        candidates = sorted({i for w in key.split() for i in self._by_start.get(w[:PREFIX], ())})
        if not candidates:
            return None
        keys = [self.keys[i] for i in candidates]
        for _, _, index in process.extract(key, keys, scorer=fuzz.token_set_ratio, score_cutoff=THRESHOLD,
                                           limit=8):
            if _lengths_fit(key, keys[index]):  # the most similar that fits
                return candidates[index]
        return None


def count_like(rows: Sequence[Unanswered], text: str, *, since: datetime | None = None,
               until: datetime | None = None) -> int:
    """How many of `rows` (in [since, until) when given) are the same question as `text`."""
    key = _key(text)
    return sum(1 for row in rows if (since is None or row.at >= since) and (until is None or row.at < until)
               and similar(_key(row.text), key))


def for_period(conn: Connection[Any], tenant_id: int, start: datetime, end: datetime) -> Grouping:
    """The company's groups over [start, end), with each group's count over the same length of time before."""
    current = unanswered.between(conn, tenant_id, start, end)
    before = unanswered.between(conn, tenant_id, start - (end - start), start)
    return group(current, before)
