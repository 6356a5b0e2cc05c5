"""The message router: one customer message (+ what the dialog expects) -> intent and entities.

Stages, in order (docs/NLU.md is the contract, chatbot/routing.py the types):
1. regex: a tracking code, a tapped button / menu number / option title, a yes/no answer;
2. keyword: normalised words -> synonyms -> lookup lemmas (typos corrected by sound and by rapidfuzz's
   edit distance),
   weighted phrases of chatbot/lexicon/es_sv.yaml scored per intent, the priority rules applied;
3. llm: only when 1 and 2 are not confident and a model is given; otherwise the rules' answer,
   "out_of_scope" with low confidence when nothing was recognised (stage "fallback").
Pure: no I/O, no clock; the language resources are built once per process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA
from spacy.tokens import Doc

from chatbot import entities as ent
from chatbot.normalize import normalize, sound_key
from chatbot.routing import INTENTS, PRIORITY, DialogContext, Route

logger = logging.getLogger(__name__)

LLM_THRESHOLD = 0.6  # below this confidence the rules' answer is a guess: ask the LLM when there is one
PRESENT = 2.0  # an intent scoring this much is carried by the message
MAX_GAP = 2  # words allowed between two words of a phrase
MAX_TOKENS = 200
PLACE_WORD = "lugar"  # what a named place (point, city) stands for in the lexicon's phrases
ACTIONABLE = PRIORITY[:5]  # complaint, human_agent, change_delivery, sales_lead, opt_out: win when present
INFORMATION = PRIORITY[5:15]
SOCIAL = ("goodbye", "thanks", "greeting")
OPTION_INTENTS = {"menu_track": "track_package", "menu_points": "locations", "menu_prices": "pricing",
                  "menu_faq": "menu", "menu_human": "human_agent"}
EXPECTED_INTENT = {"point": "locations", "weight": "pricing", "tracking_code": "track_package",
                   "name": "find_packages"}
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
def _rules() -> _Rules:
    lex = ent.lexicon()
    synonyms = {normalize(k): normalize(v) for k, v in lex["synonyms"].items()}
    words: set[str] = set(synonyms) | {w for v in synonyms.values() for w in v.split()}
    for table in [lex["intents"], lex["injection"], *lex["context_intents"].values()]:
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
    rules = _rules()
    if word in rules.overrides:
        return rules.overrides[word]
    found = ent.lemma(word)
    if found is None and (clitic := _CLITIC.match(word)):  # "retirarlo" -> "retirar", "busquenme" -> "buscar"
        base = clitic.group(1)
        found = rules.overrides.get(base) or ent.lemma(base) or (base if base.endswith(("ar", "er", "ir")) else None)
    return found or word


def _unknown(word: str) -> bool:
    return (len(word) >= 3 and word.isalpha() and not ent.is_word(word) and _lemma_of(word) == word
            and word not in _rules().synonyms and word not in ent.language().aliases)


def _known_stem(word: str) -> str | None:
    """A diminutive's base word when that is known: "adiosito" -> "adios", "paquetito" -> "paquete"."""
    for suffix in ("citos", "citas", "cito", "cita", "itos", "itas", "ito", "ita"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            for base in (stem, stem + "o", stem + "a", stem + "e"):
                if base in _rules().vocabulary or base in _rules().synonyms or ent.is_word(base):
                    return base
    return None


@lru_cache(maxsize=65536)
def _correct(word: str) -> str:
    """A misspelled word -> the lexicon word it sounds like ("kiero" -> "quiero") or nearly is ("rastriar")."""
    rules = _rules()
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
def _canon(word: str) -> tuple[Token, ...]:
    """One normalised word -> the tokens it stands for (none for a filler, two for "pal")."""
    rules = _rules()
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
            keys.add("=" + _rules().synonyms.get(word, word))
        else:
            tokens = _canon(normalize(alt))
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


def _score(tokens: list[Token], expecting: str | None) -> dict[str, float]:
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


@dataclass(frozen=True)
class _Reading:
    """What the rules read in one message."""

    norm: str
    doc: Doc
    entities: dict[str, Any]
    explicit: dict[str, float]  # scores from the words of the message
    scores: dict[str, float]  # the same plus hints from its entities


def _read(text: str, expecting: str | None) -> _Reading:
    lex, rules = ent.lexicon(), _rules()
    norm = " ".join(normalize(text).split()[:MAX_TOKENS])
    if not norm:  # only emojis: those that say something on their own ("👍", "🙏", "👋") are read as words
        norm = normalize(" ".join(word for emoji, word in rules.emojis.items() if emoji in text))
    norm = " ".join(rules.phrase_pattern.sub(lambda m: rules.phrases[m.group(0)], norm).split())
    doc = ent.language().nlp.make_doc(norm)
    starts = {start: end for start, end, _ in ent.places(doc)}
    tokens: list[Token] = []
    i = 0
    while i < len(doc):  # a place name counts as the word PLACE_WORD ("mejor en San Miguel" ~ "mejor en lugar")
        if i in starts:
            tokens.append((PLACE_WORD, PLACE_WORD))
            i = starts[i]
        else:
            tokens.extend(_canon(doc[i].text))
            i += 1
    found: dict[str, Any] = {}
    code = ent.extract_tracking_code(text)
    if code is None and expecting == "tracking_code":
        code = ent.extract_bare_code(text)
    weight = ent.extract_weight(text, bare_number=expecting == "weight")
    point, candidates = ent.resolve_point(doc)
    for key, value in (("tracking_code", code), ("weight_lbs", weight), ("point", point),
                       ("point_options", list(candidates) or None), ("day", ent.find_day(doc))):
        if value is not None:
            found[key] = value
    explicit = _score(tokens, expecting)
    if code is None and ent.looks_like_code(text):  # a mistyped code: still a tracking question
        explicit["track_package"] = explicit.get("track_package", 0.0) + 4.0
    bulk = lex["bulk"]
    quantity = max(ent.extract_quantity(t, tuple(bulk["words"])) or 0  # as typed, and with typos corrected
                   for t in (text, " ".join(form for form, _ in tokens)))
    if quantity >= bulk["min_quantity"]:
        explicit[bulk["intent"]] = explicit.get(bulk["intent"], 0.0) + float(bulk["weight"])
    scores = dict(explicit)
    asked = any(explicit.get(i, 0.0) >= PRESENT for i in INFORMATION)
    for entity, hints in lex["entity_hints"].items():
        if entity in found and not asked:  # hints only help a message that asks nothing explicit
            for intent, weight in hints.items():
                scores[intent] = scores.get(intent, 0.0) + float(weight)
    return _Reading(norm, doc, found, explicit, scores)


def _rank(intent: str) -> int:
    return PRIORITY.index(intent) if intent in PRIORITY else len(PRIORITY)


def _decide(scores: dict[str, float]) -> tuple[str, float]:
    """The winning intent and a confidence: tiers of docs/NLU.md, then the score margin within a tier."""
    if scores.get("injection", 0.0) >= 4:
        return "out_of_scope", 0.95
    scores = {i: s for i, s in scores.items() if i in INTENTS}
    present = {i: s for i, s in scores.items() if s >= PRESENT}
    if not present:
        if not scores:
            return "out_of_scope", 0.3
        return min(scores, key=lambda i: (-scores[i], _rank(i))), 0.45
    for intent in ACTIONABLE:
        if intent in present:
            return intent, min(0.97, 0.6 + 0.1 * present[intent])
    info = sorted((i for i in scores if i in INFORMATION), key=lambda i: (-scores[i], _rank(i)))
    if info and info[0] in present:
        best = scores[info[0]]
        second = scores[info[1]] if len(info) > 1 else 0.0
        return info[0], round(0.5 + 0.5 * min(1.0, best / 4) * (best - second) / best, 3)
    for intent in ("menu", "out_of_scope", *SOCIAL):
        if intent in present:
            return intent, min(0.95, 0.6 + 0.1 * present[intent])
    return "out_of_scope", 0.3  # unreachable: every present intent is in a tier


def _strong(reading: _Reading) -> str | None:
    """The intent the words of the message ask for on their own, if any (a topic switch under context)."""
    if reading.explicit.get("injection", 0.0) >= 4:
        return "out_of_scope"
    intent, _ = _decide(reading.explicit)
    return None if intent in SOCIAL or reading.explicit.get(intent, 0.0) < PRESENT else intent


def _option(reply_id: str | None, reading: _Reading, context: DialogContext | None) -> Route | None:
    """A tapped button / list row, a menu number ("2", "la 2", "opción dos") or an option title."""
    option = reply_id
    if option is None and context is not None and context.options:
        lex = ent.lexicon()
        rest = [w for w in reading.norm.split() if w not in lex["option_words"]]
        if len(rest) == 1:
            number = int(rest[0]) if rest[0].isdigit() and len(rest[0]) <= 2 else lex["numbers"].get(rest[0])
            if isinstance(number, int) and 1 <= number <= len(context.options):
                option = context.options[number - 1]
        titles = [normalize(t) for t in context.option_titles[:len(context.options)]]
        if option is None and reading.norm and titles:
            best = process.extractOne(reading.norm, titles, scorer=fuzz.ratio, score_cutoff=90)
            option = context.options[best[2]] if best is not None else None
    if option is None:
        return None
    found = dict(reading.entities)
    if option in ent.point_ids():  # a tapped point ("san_miguel") is that point
        found["point"] = option
    intent = OPTION_INTENTS.get(option) or (option if option in INTENTS else None)
    if intent is None:
        in_context = _in_context(replace(reading, entities=found), context, "") if context else None
        strong = in_context.intent if in_context else _strong(reading)
        intent = strong if strong and strong != "out_of_scope" else "menu"
    return Route(intent, found, "regex", 1.0, option_id=option)


def _answer(norm: str) -> str | None:
    """"yes"/"no" when the message starts with a yes/no word ("simón", "va pues", "nel")."""
    padded = norm + " "
    best: tuple[int, str] | None = None
    for value, phrases in ent.lexicon()["answers"].items():
        for phrase in phrases:
            p = normalize(phrase)
            if padded.startswith(p + " ") and (best is None or len(p) > best[0]):
                best = (len(p), str(value))
    return best[1] if best else None


def _name(text: str) -> str | None:
    """A person's name typed on its own or after "mi nombre es" / "me llamo"."""
    words = re.sub(r"[^\w\s'-]", " ", text).split()
    for prefix in sorted(ent.lexicon()["name_prefixes"], key=len, reverse=True):
        size = len(prefix.split())
        if normalize(" ".join(words[:size])) == normalize(prefix):
            words = words[size:]
            break
    vocabulary = _rules().vocabulary
    ok = 1 <= len(words) <= 5 and all(w.replace("'", "").replace("-", "").isalpha() for w in words)
    ok = ok and not any(normalize(w) in vocabulary for w in words)  # "no tengo el código" is not a name
    return " ".join(w.capitalize() for w in words) if ok else None


def _in_context(reading: _Reading, context: DialogContext, text: str) -> Route | None:
    """The reply to what the bot asked for (a point, a weight, a code, a name), unless the topic changed."""
    expecting, found = context.expecting or "", reading.entities
    default = EXPECTED_INTENT.get(expecting)
    strong = _strong(reading)
    if default is None or (strong is not None and strong != context.last_intent):
        return None
    intent = context.last_intent or default
    if expecting == "point" and ("point" in found or "point_options" in found):
        return Route(intent, found, "keyword", 0.9)
    if expecting == "weight" and "weight_lbs" in found:
        return Route(intent, found, "keyword", 0.9)
    if expecting == "tracking_code" and sum(ch.isdigit() for ch in reading.norm) >= 4:
        return Route("track_package", found, "keyword", 0.8)
    if expecting == "name" and (name := _name(text)):
        return Route(intent, {**found, "name": name}, "keyword", 0.8)
    return None


def route(text: str, context: DialogContext | None = None, *, reply_id: str | None = None,
          llm: Callable[[str, DialogContext | None], Route | None] | None = None) -> Route:
    """The intent and entities of one customer message; never raises on odd text.

    `context` is what the dialog knows (what the bot asked, the options it offered, the last intent);
    `reply_id` the id of a tapped button or list row; `llm` an optional second opinion, asked only when
    the rules are not confident (its answer is used when its own confidence is at least LLM_THRESHOLD).
    """
    text = text if isinstance(text, str) else ""
    expecting = context.expecting if context is not None else None
    reading = _read(text, expecting)
    picked = _option(reply_id, reading, context)
    if picked is not None:
        return picked
    answer = _answer(reading.norm) if expecting == "yes_no" else None
    strong = _strong(reading)
    if "tracking_code" in reading.entities:
        intent = strong if strong in ACTIONABLE else "track_package"
        return Route(intent or "track_package", reading.entities, "regex", 1.0, answer=answer)
    if answer is not None:
        said = _decide(reading.scores)[0]
        meant = said if reading.scores.get(said, 0.0) >= PRESENT else None
        meant = meant or (context.last_intent if context is not None else None) or "menu"
        return Route(meant, reading.entities, "regex", 1.0, answer=answer)
    if context is not None and (in_context := _in_context(reading, context, text)) is not None:
        return in_context
    intent, confidence = _decide(reading.scores)
    stage = "keyword" if reading.scores else "fallback"
    result = Route(intent, reading.entities, stage, confidence)
    if confidence < LLM_THRESHOLD and llm is not None and reading.norm:
        return _ask_llm(llm, text, context, result)
    return result


def _ask_llm(llm: Callable[[str, DialogContext | None], Route | None], text: str,
             context: DialogContext | None, rules: Route) -> Route:
    """The model's reading when it is confident and valid; the rules' otherwise (errors are logged, never raised)."""
    try:
        answer = llm(text, context)
    except Exception:  # a model or network failure must not lose the message
        logger.exception("llm router failed; keeping the rules' answer")
        return rules
    if isinstance(answer, Route) and answer.intent in INTENTS and answer.confidence >= LLM_THRESHOLD:
        return replace(answer, entities={**rules.entities, **answer.entities}, stage="llm")
    return rules
