"""The phrase engine of the router's keyword stage: words -> canonical tokens -> weighted phrases per intent.

A message's words become (written form, lemma) tokens: synonyms of
chatbot/lexicon/es_sv.yaml applied, lemmas from spaCy's lookup tables (with
overrides), typos corrected by sound and by edit distance against the words the
lexicon uses. The lexicon's phrases are compiled once per process into slot
patterns ("donde + queda", "=hola", "paquete|encargo llegar") and matched
against the tokens: ordered with gaps of at most MAX_GAP words, or anywhere
("a + b"); each token serves one phrase. `score` sums the weights per intent (a
policy question of the lexicon is summed apart, as "<intent>:<question>").
Pure: no I/O; the tables are built on first use and cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from chatbot import entities as ent
from services.normalize import normalize, sound_key

MAX_GAP = 2  # words allowed between two words of a phrase
PLACE_WORD = "lugar"  # what a named place (point, city) stands for in the lexicon's phrases
QUESTION_SEPARATOR = ":"  # score keys of the lexicon's policy questions: "payment:payment_methods"
COMPANY_WEIGHT = 4.0  # a company's own phrase (storage/intent_phrases.py) carries its intent on its own

_DOUBLED = re.compile(r"([a-z])\1")
_CLITIC = re.compile(r"^(\w{3,}?)(melo|selo|me|te|se|lo|la|los|las|le|les|nos)$")

Token = tuple[str, str]  # (written form after synonyms, lemma)


@dataclass(frozen=True)
class _Pattern:
    intent: str
    weight: float
    slots: tuple[frozenset[str], ...]  # each slot: lemmas, or "=form" for an exact written form
    ordered: bool = True  # False ("a + b"): anywhere in the message, in any order


@dataclass(frozen=True)
class _Rules:
    synonyms: dict[str, str]
    overrides: dict[str, str]
    fillers: frozenset[str]
    vocabulary: tuple[str, ...]  # every word the lexicon's phrases use: targets of typo correction
    by_sound: dict[str, str]
    emojis: dict[str, str]
    phrases: dict[str, str]
    phrase_pattern: re.Pattern[str]


@cache
def tables() -> _Rules:
    lex = ent.lexicon()
    synonyms = {normalize(k): normalize(v) for k, v in lex["synonyms"].items()}
    words: set[str] = set(synonyms) | {w for v in synonyms.values() for w in v.split()}
    questions = [spec["phrases"] for spec in lex.get("policy_questions", {}).values()]
    for table in [lex["intents"], lex["injection"], *lex["context_intents"].values(), *questions]:
        for phrase in _phrases(table):
            words.update(normalize(phrase).split())  # "=", "|" and "+" are not letters: they fall away
    for phrases in lex["answers"].values():
        words.update(w for p in phrases for w in normalize(p).split())
    vocabulary = tuple(sorted(w for w in words if len(w) >= 3 and not w.isdigit()))
    by_sound: dict[str, str] = {}
    for word in vocabulary:
        by_sound.setdefault(sound_key(word), word)
    phrases = {normalize(k): normalize(v) for k, v in lex["phrases"].items()}
    alternation = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True) if p) or "(?!)"
    return _Rules(synonyms, {normalize(k): normalize(v) for k, v in lex["lemma_overrides"].items()},
                  frozenset(normalize(f) for f in lex["fillers"]), vocabulary, by_sound, dict(lex["emojis"]),
                  phrases, re.compile(rf"\b(?:{alternation})\b"))


def _phrases(table: Any) -> list[str]:
    """All phrases of a {intent: {weight: [phrase]}} or {weight: [phrase]} table."""
    if isinstance(table, list):
        return [str(p) for p in table]
    return [p for value in table.values() for p in _phrases(value)]


def _lemma_of(word: str) -> str:
    rules = tables()
    if word in rules.overrides:
        return rules.overrides[word]
    found = ent.lemma(word)
    if found is None and (clitic := _CLITIC.match(word)):  # "retirarlo" -> "retirar", "busquenme" -> "buscar"
        base = clitic.group(1)
        found = rules.overrides.get(base) or ent.lemma(base) or (base if base.endswith(("ar", "er", "ir")) else None)
    return found or word


def _unknown(word: str) -> bool:
    return (len(word) >= 3 and word.isalpha() and not ent.is_word(word) and _lemma_of(word) == word
            and word not in tables().synonyms and word not in ent.language().aliases)


def _known_stem(word: str) -> str | None:
    """A diminutive's base word when that is known: "adiosito" -> "adios", "paquetito" -> "paquete"."""
    for suffix in ("citos", "citas", "cito", "cita", "itos", "itas", "ito", "ita"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            for base in (stem, stem + "o", stem + "a", stem + "e"):
                if base in tables().vocabulary or base in tables().synonyms or ent.is_word(base):
                    return base
    return None


@lru_cache(maxsize=65536)
def _correct(word: str) -> str:
    """A misspelled word -> the lexicon word it sounds like ("kiero" -> "quiero") or nearly is ("rastriar")."""
    rules = tables()
    if word in rules.vocabulary or not _unknown(word):
        return word
    stem = _known_stem(word)
    if stem is not None:
        return stem
    by_sound = rules.by_sound.get(sound_key(word))
    if by_sound:
        return by_sound
    single = _DOUBLED.sub(r"\1", word)  # "paqueete", "deejen": emphasis on a letter Spanish may double
    if single != word and (single in rules.vocabulary or ent.is_word(single)):
        return single
    if len(word) >= 4:  # one slip (a letter missing, extra, wrong or two swapped); two in long words
        edits = 1 if len(word) < 8 else 2
        near = process.extract(word, rules.vocabulary, scorer=OSA.distance, score_cutoff=edits, limit=8)
        if near:  # the fewest slips; among those, the most letters in common ("prdi" -> "perdi", not "pedi")
            return str(min(near, key=lambda n: (n[1], -fuzz.ratio(word, n[0])))[0])
    return word


@lru_cache(maxsize=65536)
def canon(word: str) -> tuple[Token, ...]:
    """One normalised word -> the tokens it stands for (none for a filler, two for "pal")."""
    rules = tables()
    mapped = rules.synonyms.get(word)
    if mapped is None:
        fixed = _correct(word)
        mapped = rules.synonyms.get(fixed, fixed)
    return tuple((w, _lemma_of(w)) for w in mapped.split() if w not in rules.fillers)


def _slot(alternatives: str) -> frozenset[str]:
    keys: set[str] = set()
    for alt in alternatives.split("|"):
        if alt.startswith("="):
            word = normalize(alt[1:])
            keys.add("=" + tables().synonyms.get(word, word))
        else:
            tokens = canon(normalize(alt))
            if len(tokens) > 1:
                raise ValueError(f"lexicon phrase word {alt!r} must stand for one word")
            keys.update(k for token in tokens for k in token)  # lemma or form; a filler stands for nothing
    return frozenset(keys)


def _compile(table: dict[Any, Any], intent: str) -> list[_Pattern]:
    compiled = [(float(weight), tuple(s for s in map(_slot, str(phrase).replace(" + ", " ").split()) if s),
                 " + " not in str(phrase)) for weight, phrases in table.items() for phrase in phrases]
    return [_Pattern(intent, weight, slots, ordered) for weight, slots, ordered in compiled if slots]


@cache
def _patterns(expecting: str | None) -> tuple[tuple[_Pattern, ...], dict[str, tuple[int, ...]]]:
    """All phrases (+ those of the awaited answer), heaviest and longest first: they take their words first.

    With an index: word key -> positions of the phrases whose first slot it fills.
    """
    lex = ent.lexicon()
    found = [p for intent, table in lex["intents"].items() for p in _compile(table, intent)]
    found += _compile(lex["injection"], "injection")
    for name, spec in lex.get("policy_questions", {}).items():  # scored as "<intent>:<question>"
        found += _compile(spec["phrases"], f"{spec['intent']}{QUESTION_SEPARATOR}{name}")
    for intent, table in lex["context_intents"].get(expecting or "", {}).items():
        found += _compile(table, intent)
    ordered = tuple(sorted(found, key=lambda p: (-p.weight, -len(p.slots))))
    index: dict[str, list[int]] = {}
    for i, pattern in enumerate(ordered):
        for key in pattern.slots[0]:
            index.setdefault(key, []).append(i)
    return ordered, {key: tuple(positions) for key, positions in index.items()}


def _match(slots: tuple[frozenset[str], ...], keys: list[tuple[str, str, str]], used: set[int],
           start: int, first: bool) -> list[int] | None:
    """Positions of the slots in order (gaps of at most MAX_GAP words), avoiding used ones; None if absent."""
    slot, end = slots[0], len(keys) if first else min(len(keys), start + MAX_GAP + 1)
    for i in range(start, end):
        if i not in used and not slot.isdisjoint(keys[i]):
            rest = [] if len(slots) == 1 else _match(slots[1:], keys, used, i + 1, False)
            if rest is not None:
                return [i, *rest]
    return None


def _anywhere(slots: tuple[frozenset[str], ...], keys: list[tuple[str, str, str]], used: set[int]) -> list[int] | None:
    """Distinct unused positions for every slot, in any order; None if one is missing."""
    taken: list[int] = []
    for slot in slots:
        i = next((i for i, k in enumerate(keys) if i not in used and i not in taken and not slot.isdisjoint(k)), None)
        if i is None:
            return None
        taken.append(i)
    return taken


def score(tokens: list[Token], expecting: str | None) -> dict[str, float]:
    keys = [(lem, form, "=" + form) for form, lem in tokens]
    present = {k for triple in keys for k in triple}
    patterns, index = _patterns(expecting)
    candidates = sorted({i for key in present for i in index.get(key, ())})
    used: set[int] = set()
    scores: dict[str, float] = {}
    for pattern in (patterns[i] for i in candidates):
        if not all(slot & present for slot in pattern.slots):
            continue
        found = _match(pattern.slots, keys, used, 0, True) if pattern.ordered else _anywhere(pattern.slots, keys, used)
        if found is not None:
            used.update(found)
            scores[pattern.intent] = scores.get(pattern.intent, 0.0) + pattern.weight
    return scores


CompanyPhrases = tuple[tuple[str, str], ...]  # a company's own (intent, phrase) pairs, as its admin wrote them


@lru_cache(maxsize=256)
def company_patterns(extra: CompanyPhrases) -> tuple[_Pattern, ...]:
    """A company's phrases as slot patterns (each word: its lemma or written form, typos corrected as the
    message's are), longest first; compiled once per process for each distinct set of phrases."""
    found = []
    for intent, phrase in extra:
        slots = tuple(frozenset(token) for word in normalize(phrase).split() for token in canon(word))
        if slots:
            found.append(_Pattern(intent, COMPANY_WEIGHT, slots))
    return tuple(sorted(found, key=lambda p: -len(p.slots)))


def company_score(tokens: list[Token], extra: CompanyPhrases) -> dict[str, float]:
    """COMPANY_WEIGHT for each intent one of the company's phrases appears for (all its words, in any order:
    customers word the same question many ways), whatever the lexicon's phrases took. Nothing to do (no cost)
    for a company without any."""
    if not extra:
        return {}
    keys = [(lem, form, "=" + form) for form, lem in tokens]
    present = {k for triple in keys for k in triple}
    scores: dict[str, float] = {}
    for pattern in company_patterns(extra):
        if pattern.intent in scores or not all(slot & present for slot in pattern.slots):
            continue
        if _anywhere(pattern.slots, keys, set()) is not None:
            scores[pattern.intent] = pattern.weight
    return scores
