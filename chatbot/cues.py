"""Cues: what a message says beyond its intent, named in the lexicon (`cues` in chatbot/lexicon/es_sv.yaml).

A cue is a small fact the dialog acts on, such as "it asks about both
packages" (`plural`), "it is about picking the package up" (`pickup`) or "it
follows up on the last answer" (`follow_up`). The dialog never looks for words
itself: it asks `Turn.cue`, which reads `cues_in` once per message and only when
a rule needs it, and scripts/eval_nlu.py scores them like intents and entities.

Phrases are matched on the text's words (`services.normalize.fold_words`: lower
case, no accents, punctuation as spaces) as whole words; a trailing `*` makes the
last word a prefix ("recog*" matches "recoger", "recojo" does not), a leading `^`
anchors the phrase at the start of the message and a trailing `$` at its end
(`^alta$`: the whole message). A phrase without letters or digits (an emoji,
which folding removes) is looked for in the text as typed ("❤" also finds "❤️").
Built once per process into one regular expression per cue.
"""

from __future__ import annotations

import re
from functools import cache

from chatbot.entities import lexicon
from services.normalize import MAX_CHARS, fold_words


def _is_sign(phrase: str) -> bool:
    """A phrase of no words (an emoji): matched as typed."""
    return not fold_words(phrase.strip("^*$"))


def _pattern(phrase: str) -> str:
    anchored, ends, prefix = phrase.startswith("^"), phrase.endswith("$"), phrase.rstrip("$").endswith("*")
    words = fold_words(phrase.strip("^*$")).split()
    body = r"\s+".join(re.escape(w) for w in words)
    tail = "$" if ends else "" if prefix else r"(?![a-z0-9])"
    return ("^" if anchored else r"(?<![a-z0-9])") + body + tail


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[str] | None, tuple[str, ...]], ...]:
    """Each cue: one expression of its word phrases (None without any), and its signs."""
    table: dict[str, list[str]] = lexicon()["cues"]
    compiled = []
    for name, phrases in table.items():
        words = [_pattern(p) for p in phrases if not _is_sign(p)]
        signs = tuple(p for p in phrases if _is_sign(p))
        compiled.append((name, re.compile("|".join(words)) if words else None, signs))
    return tuple(compiled)


@cache
def _any() -> re.Pattern[str]:
    """Every word phrase of every cue in one expression: most messages carry no cue and cost one search."""
    return re.compile("|".join(_pattern(p) for phrases in lexicon()["cues"].values() for p in phrases
                               if not _is_sign(p)))


def names() -> frozenset[str]:
    """Every cue the lexicon defines."""
    return frozenset(name for name, _, _ in _compiled())


def cues_in(text: str) -> frozenset[str]:
    """The cues of one message (as typed: it is folded here; cut at `MAX_CHARS`)."""
    text = text[:MAX_CHARS]
    folded = fold_words(text)
    found: set[str] = set()
    if folded and _any().search(folded):
        found.update(name for name, pattern, _ in _compiled() if pattern is not None and pattern.search(folded))
    if not text.isascii():  # an emoji or a sign: only then are the signs looked for
        found.update(name for name, _, signs in _compiled() if any(sign in text for sign in signs))
    return frozenset(found)
