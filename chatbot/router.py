"""The message router: one customer message (+ what the dialog expects) -> intent and entities.

Stages, in order (docs/NLU.md is the contract, chatbot/routing.py the types):
1. regex: a tracking code, a tapped button / menu number / option title, a yes/no answer;
2. keyword: the message's words scored per intent by the phrase engine (chatbot/phrases.py: synonyms,
   lemmas, typo correction, the weighted phrases of chatbot/lexicon/es_sv.yaml), entity hints added,
   the priority rules applied;
3. llm: only when 1 and 2 are not confident and a model is given; otherwise the rules' answer,
   "out_of_scope" with low confidence when nothing was recognised (stage "fallback").
Pure: no I/O, no clock; the language resources are built once per process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rapidfuzz import fuzz, process
from spacy.tokens import Doc

from chatbot import entities as ent
from chatbot import phrases
from chatbot.routing import INTENTS, PRIORITY, DialogContext, Route
from services.normalize import MAX_CHARS, normalize

logger = logging.getLogger(__name__)

LLM_THRESHOLD = 0.6  # below this confidence the rules' answer is a guess: ask the LLM when there is one
PRESENT = 2.0  # an intent scoring this much is carried by the message
MAX_TOKENS = 200
ACTIONABLE = PRIORITY[:5]  # complaint, human_agent, change_delivery, sales_lead, opt_out: win when present
INFORMATION = PRIORITY[5:15]
SOCIAL = ("goodbye", "thanks", "greeting")
OPTION_INTENTS = {"menu_track": "track_package", "menu_points": "locations", "menu_prices": "pricing",
                  "menu_faq": "menu", "menu_human": "human_agent"}
EXPECTED_INTENT = {"point": "locations", "weight": "pricing", "tracking_code": "track_package",
                   "name": "find_packages"}
@dataclass(frozen=True)
class _Reading:
    """What the rules read in one message."""

    norm: str
    doc: Doc
    entities: dict[str, Any]
    explicit: dict[str, float]  # scores from the words of the message
    scores: dict[str, float]  # the same plus hints from its entities


def _read(text: str, expecting: str | None, extra: phrases.CompanyPhrases = ()) -> _Reading:
    lex, rules = ent.lexicon(), phrases.tables()
    norm = " ".join(normalize(text).split()[:MAX_TOKENS])
    if not norm:  # only emojis: those that say something on their own ("👍", "🙏", "👋") are read as words
        norm = normalize(" ".join(word for emoji, word in rules.emojis.items() if emoji in text))
    norm = " ".join(rules.phrase_pattern.sub(lambda m: rules.phrases[m.group(0)], norm).split())
    doc = ent.language().nlp.make_doc(norm)
    starts = {start: end for start, end, _ in ent.places(doc)}
    tokens: list[phrases.Token] = []
    i = 0
    while i < len(doc):  # a place name counts as PLACE_WORD ("mejor en San Miguel" ~ "mejor en lugar")
        if i in starts:
            tokens.append((phrases.PLACE_WORD, phrases.PLACE_WORD))
            i = starts[i]
        else:
            tokens.extend(phrases.canon(doc[i].text))
            i += 1
    found: dict[str, Any] = {}
    codes = ent.extract_tracking_codes(text)
    code = codes[0] if codes else None
    if len(codes) > 1:
        found["tracking_codes"] = codes  # "SV… y SV…": each is tracked
    if code is None and expecting == "tracking_code":
        code = ent.extract_bare_code(text)
    unsure = ent.unsure_code(text) if code is None else None
    if unsure is not None:  # "SV2026010601234S": two readings, asked about (`code_options`), never guessed
        found["code_options"] = list(unsure.candidates)
    attempt = ent.code_attempt(text) if code is None and unsure is None else None
    weight = ent.extract_weight(text, bare_number=expecting == "weight")
    point, candidates = ent.resolve_point(doc)
    place, place_options = ent.resolve_place(doc)  # a place of El Salvador that is not a point's
    found.update({k: v for k, v in (("place", place), ("place_options", list(place_options)),
                                    ("within", ent.ships_within(doc))) if v})
    explicit, policy = _policy_question(phrases.score(tokens, expecting))
    for intent, weight in phrases.company_score(tokens, extra).items():  # the company's own phrases
        explicit[intent] = explicit.get(intent, 0.0) + weight
    for key, value in (("tracking_code", code), ("code_attempt", attempt), ("weight_lbs", weight), ("point", point),
                       ("point_options", list(candidates) or None), ("day", ent.find_day(doc)), ("policy", policy)):
        if value is not None:
            found[key] = value
    if attempt is not None and (attempt.startswith("SV") or attempt.isdigit()):  # a mistyped code: tracking
        explicit["track_package"] = explicit.get("track_package", 0.0) + 4.0  # ("ABC123" only carries the entity)
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


def _policy_question(scores: dict[str, float]) -> tuple[dict[str, float], str | None]:
    """The lexicon's policy questions ("payment:payment_methods") counted for their intent; the strongest present."""
    folded: dict[str, float] = {}
    best: tuple[float, str] | None = None
    for key, value in scores.items():
        intent, separator, question = key.partition(phrases.QUESTION_SEPARATOR)
        folded[intent] = folded.get(intent, 0.0) + value
        if separator and value >= PRESENT and (best is None or value > best[0]):
            best = (value, question)
    return folded, best[1] if best else None


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
    for value, wordings in ent.lexicon()["answers"].items():
        for phrase in wordings:
            p = normalize(phrase)
            if padded.startswith(p + " ") and (best is None or len(p) > best[0]):
                best = (len(p), str(value))
    return best[1] if best else None


def _without_lead(words: list[str], leads: list[str], *, repeated: bool) -> list[str]:
    """`words` without the lexicon phrase they start with (or, `repeated`, the phrases that follow each other
    there: "hola, buenos días"), and without the commas around it."""
    ordered = sorted((normalize(lead) for lead in leads), key=lambda lead: -len(lead.split()))
    words = words[next((i for i, w in enumerate(words) if w != ","), len(words)):]
    for _ in range(len(words) if repeated else 1):
        lead = next((p for p in ordered if p and normalize(" ".join(words[:len(p.split())])) == p), None)
        if lead is None:
            break
        words = words[len(lead.split()):]
        words = words[next((i for i, w in enumerate(words) if w != ","), len(words)):]
    return words


def _name(text: str) -> str | None:
    """A person's name as typed, on its own or after "mi nombre es" / "me llamo", maybe after a greeting
    ("Buenos días, soy Ana López"), up to a comma ("María López, en San Miguel"); None when the words are
    not a name ("no tengo el código", "buenos días", "no sé": it starts with a yes/no word)."""
    lex = ent.lexicon()
    words = re.sub(r"[^\w\s,'-]", " ", text).replace(",", " , ").split()
    words = _without_lead(words, lex["name_greetings"], repeated=True)
    words = _without_lead(words, lex["name_prefixes"], repeated=False)
    words = words[:words.index(",")] if "," in words else words
    particles = {normalize(p) for p in lex["name_particles"]}
    proper = [w for w in words if normalize(w) not in particles]
    vocabulary = phrases.tables().vocabulary
    ok = 1 <= len(proper) <= 5 and bool(words) and words[0] in proper
    ok = ok and all(w.replace("'", "").replace("-", "").isalpha() for w in words)
    ok = ok and not any(normalize(w) in vocabulary for w in proper)  # "no tengo el código" is not a name
    ok = ok and normalize(words[0]) not in {normalize(a) for said in lex["answers"].values() for a in said}
    return " ".join(words) if ok else None


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
          llm: Callable[[str, DialogContext | None], Route | None] | None = None,
          extra: phrases.CompanyPhrases = ()) -> Route:
    """The intent and entities of one customer message; never raises on odd text.

    `context` is what the dialog knows (what the bot asked, the options it offered, the last intent);
    `reply_id` the id of a tapped button or list row; `llm` an optional second opinion, asked only when
    the rules are not confident (its answer is used when its own confidence is at least LLM_THRESHOLD);
    `extra` the company's own (intent, phrase) pairs (storage/intent_phrases.py), matched in the keyword stage.
    """
    text = text[:MAX_CHARS] if isinstance(text, str) else ""  # a hostile message costs bounded time
    return _route(text, context, reply_id, llm, extra)


def _route(text: str, context: DialogContext | None, reply_id: str | None,
           llm: Callable[[str, DialogContext | None], Route | None] | None,
           extra: phrases.CompanyPhrases = ()) -> Route:
    expecting = context.expecting if context is not None else None
    reading = _read(text, expecting, extra)
    picked = _option(reply_id, reading, context)
    if picked is not None:
        return picked
    answer = _answer(reading.norm) if expecting == "yes_no" else None
    strong = _strong(reading)
    if "tracking_code" in reading.entities or "code_options" in reading.entities:
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
    result = Route(intent, reading.entities, stage, confidence, parts=_parts(text, reading, extra))
    if confidence < LLM_THRESHOLD and llm is not None and reading.norm:
        return _ask_llm(llm, text, context, result)
    return result


def _clauses(text: str) -> list[str]:
    """The message cut where a new question may start: punctuation, and the lexicon's joining words ("y")."""
    words = "|".join(re.escape(w) for w in ent.lexicon()["clause_breaks"])
    return [c.strip() for c in re.split(rf"[?¿!.;,]+|\s(?:{words})\s", f" {text} ", flags=re.IGNORECASE) if c.strip()]


def _parts(text: str, reading: _Reading, extra: phrases.CompanyPhrases = ()) -> tuple[Route, ...]:
    """Each question of a message that asks two or more different things, routed on its own, in order.

    Only when the words ask for two information intents; clauses that ask nothing of their own ("de Santa Ana
    y La Unión") stay with the clause before them, so a part is a whole question.
    """
    asked = [i for i in INFORMATION if reading.explicit.get(i, 0.0) >= PRESENT]
    if len(asked) < 2:
        return ()
    groups: list[tuple[str, str | None]] = []
    for clause in _clauses(text):
        strong = _strong(_read(clause, None, extra))
        if groups and (strong is None or groups[-1][1] in (None, strong)):
            joined, intent = groups[-1]
            groups[-1] = (f"{joined} {clause}", intent or strong)
        else:
            groups.append((clause, strong))
    if sum(1 for _, intent in groups if intent in INFORMATION) < 2:
        return ()
    return tuple(replace(_route(clause, None, None, None, extra), clause=clause) for clause, _ in groups)


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
