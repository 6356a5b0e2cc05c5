"""Cues: what a message says beyond its intent, named in the lexicon (`cues` in chatbot/lexicon/es_sv.yaml).

A cue is a small fact the dialog acts on, such as "it asks about both
packages" (`plural`), "it is about picking the package up" (`pickup`) or "it
follows up on the last answer" (`follow_up`). The dialog never looks for words
itself: it asks `Turn.cue`, which reads `cues_in` once per message and only when
a rule needs it, and scripts/eval_nlu.py scores them like intents and entities.

Phrases are matched on the folded text (lower case, no accents, punctuation as
spaces) as whole words; a trailing `*` makes the last word a prefix ("recog*"
matches "recoger", "recojo" does not), a leading `^` anchors the phrase at the
start of the message and a trailing `$` at its end (`^alta$`: the whole message).
Built once per process into one regular expression per cue.
"""

from __future__ import annotations

import re
from functools import cache

from chatbot.entities import lexicon
from services.normalize import fold as fold_accents

_NON_WORD = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower case, no accents, punctuation as single spaces: what cue phrases are matched against."""
    return _NON_WORD.sub(" ", fold_accents(text)).strip()


def _pattern(phrase: str) -> str:
    anchored, ends, prefix = phrase.startswith("^"), phrase.endswith("$"), phrase.rstrip("$").endswith("*")
    words = fold(phrase.strip("^*$")).split()
    body = r"\s+".join(re.escape(w) for w in words)
    tail = "$" if ends else "" if prefix else r"(?![a-z0-9])"
    return ("^" if anchored else r"(?<![a-z0-9])") + body + tail


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    table: dict[str, list[str]] = lexicon()["cues"]
    return tuple((name, re.compile("|".join(_pattern(p) for p in phrases))) for name, phrases in table.items())


@cache
def _any() -> re.Pattern[str]:
    """Every phrase of every cue in one expression: most messages carry no cue and cost one search."""
    return re.compile("|".join(_pattern(p) for phrases in lexicon()["cues"].values() for p in phrases))


def names() -> frozenset[str]:
    """Every cue the lexicon defines."""
    return frozenset(name for name, _ in _compiled())


def cues_in(text: str) -> frozenset[str]:
    """The cues of one message (as typed: it is folded here)."""
    folded = fold(text)
    if not folded or not _any().search(folded):
        return frozenset()
    return frozenset(name for name, pattern in _compiled() if pattern.search(folded))
