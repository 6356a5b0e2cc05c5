"""Entities of a customer message: tracking code, weight, service point, day; and the language resources.

The vocabulary comes from `chatbot/lexicon/es_sv.yaml` (`lexicon()`); the spaCy pipeline
(`spacy.blank("es")` with the lookup lemmatizer of spacy-lookups-data, plus phrase matchers
built from the lexicon for points and days) is built once per process (`language()`).
Pure functions of the text: no I/O besides reading the lexicon and the lookup tables once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import spacy
import yaml
from rapidfuzz import fuzz, process
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from chatbot.normalize import fold, normalize

LEXICON_PATH = Path(__file__).resolve().parent / "lexicon" / "es_sv.yaml"
POINT_FUZZY_CUTOFF = 88.0
_VOWEL_ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú", "n": "ñ"}
_SV_PREFIX = re.compile(r"(?<![A-Z0-9])S[\s.]?V[\s\-.:#]*(?=[0-9O])")
_SEPARATORS = " -."


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (PyYAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = {str(k) for k in keys if keys.count(k) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {sorted(duplicates)}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


@cache
def lexicon() -> dict[str, Any]:
    """The router's vocabulary (chatbot/lexicon/es_sv.yaml)."""
    data: dict[str, Any] = yaml.load(LEXICON_PATH.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506
    return data


@dataclass(frozen=True)
class Language:
    """The spaCy pipeline and the matchers and tables derived from the lexicon."""

    nlp: Any
    lemmas: Any  # spaCy lookups Table: written form -> lemma
    places: Any  # PhraseMatcher: match_id -> alias key of `aliases`
    days: Any  # PhraseMatcher: match_id -> day value
    aliases: dict[str, frozenset[str]]  # normalised place name -> ids of the points it names (empty: not a point)
    fuzzy_names: tuple[str, ...]  # aliases long enough for fuzzy matching of misspellings


def _point_aliases(lex: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Every point's name, city, department and extra aliases -> the point ids they name."""
    names: dict[str, set[str]] = {}
    by_place: dict[str, set[str]] = {}
    for point in lex["points"]:
        for field in ("name", "city", "department"):
            names.setdefault(normalize(point[field]), set()).add(point["id"])
            by_place.setdefault(normalize(point[field]), set()).add(point["id"])
        for alias in point.get("aliases", ()):
            names.setdefault(normalize(alias), set()).add(point["id"])
    for place, aliases in lex.get("place_aliases", {}).items():
        for alias in aliases:
            names.setdefault(normalize(alias), set()).update(by_place.get(normalize(place), set()))
    for place in lex.get("not_points", ()):
        names.setdefault(normalize(place), set())
    return {name: frozenset(ids) for name, ids in names.items() if name}


@cache
def language() -> Language:
    nlp = spacy.blank("es")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()  # loads es lemma_lookup from spacy-lookups-data (offline)
    lex = lexicon()
    aliases = _point_aliases(lex)
    places = PhraseMatcher(nlp.vocab)
    for name in aliases:
        places.add(name, [nlp.make_doc(name)])
    days = PhraseMatcher(nlp.vocab)
    for value, words in lex["days"].items():
        days.add(value, [nlp.make_doc(normalize(w)) for w in words])
    lemmatizer: Any = nlp.get_pipe("lemmatizer")
    table = lemmatizer.lookups.get_table("lemma_lookup")
    fuzzy_names = tuple(name for name in aliases if len(name) >= 5)
    return Language(nlp, table, places, days, aliases, fuzzy_names)


@lru_cache(maxsize=65536)
def lemma(word: str) -> str | None:
    """The lemma of a normalised word, or None when the lookup table does not know it.

    Customers rarely type accents, so an unknown form is retried with one accent or ñ restored
    ("perdi" -> "perdí" -> "perder").
    """
    table = language().lemmas
    found = table.get(word)
    if found is None and len(word) <= 20:
        for i, ch in enumerate(word):
            accented = _VOWEL_ACCENTS.get(ch)
            if accented and (found := table.get(word[:i] + accented + word[i + 1:])) is not None:
                break
    return None if found is None else fold(found)


@lru_cache(maxsize=65536)
def is_word(word: str) -> bool:
    """Whether a normalised word is Spanish the lookup table knows, as a form or through its inflections.

    The table lists inflected forms only, so a base form ("semana", "buscar") is recognised by its
    plural or its gerund ("semanas", "buscando").
    """
    if lemma(word) is not None:
        return True
    forms = [word + "s", word + "es"]
    if word.endswith(("ar", "er", "ir")):
        forms += [word[:-2] + "ando", word[:-2] + "iendo", word[:-2] + "ado", word[:-2] + "ido"]
    return any(lemma(form) is not None for form in forms)


# --- tracking code ------------------------------------------------------------------------------


def extract_tracking_code(text: str) -> str | None:
    """"SV" + 13 or 14 digits, spaces/dashes/dots between groups allowed, O typed for 0; None otherwise."""
    up = fold(text).upper()
    for match in _SV_PREFIX.finditer(up):
        digits: list[str] = []
        i = match.end()
        while i < len(up):
            ch = up[i]
            if len(digits) > 14:
                break  # a longer number than any code
            if ch.isdigit() or (ch == "O" and (digits or up[i + 1:i + 2].isdigit())):
                digits.append("0" if ch == "O" else ch)
            elif ch in _SEPARATORS and len(digits) < 13 and up[i + 1:i + 2].isdigit():
                pass  # a separator between groups of digits
            else:
                break
            i += 1
        if 13 <= len(digits) <= 14:
            return "SV" + "".join(digits)
    return None


def looks_like_code(text: str) -> bool:
    """"SV" and 6+ digits that are not a valid code ("SV 2026 0106 0112345"): a mistyped tracking code."""
    return any(sum(ch.isdigit() or ch == "O" for ch in up[m.end():m.end() + 24]) >= 6
               for up in (fold(text).upper(),) for m in _SV_PREFIX.finditer(up))


def extract_bare_code(text: str) -> str | None:
    """13 or 14 digits with nothing else (when the bot asked for a code, the "SV" may be left out)."""
    digits = re.sub(r"[\s\-.]", "", fold(text)).upper().replace("O", "0")
    digits = digits.removeprefix("SV")
    return "SV" + digits if digits.isdigit() and 13 <= len(digits) <= 14 else None


# --- weight and quantities ------------------------------------------------------------------------


@cache
def _weight_pattern() -> re.Pattern[str]:
    lex = lexicon()
    units = "|".join(sorted((re.escape(u) for u in lex["weight_units"]), key=len, reverse=True))
    words = "|".join(sorted((re.escape(w) for w in lex["numbers"]), key=len, reverse=True))
    return re.compile(rf"(?<![\w.,])(\d{{1,4}}(?:[.,]\d{{1,2}})?|{words})\s*({units})\b(\s+y\s+media)?")


def _number(token: str) -> float | None:
    value = lexicon()["numbers"].get(token)
    if value is not None:
        return float(value)
    try:
        return float(token.replace(",", "."))
    except ValueError:
        return None


def extract_weight(text: str, *, bare_number: bool = False) -> float | None:
    """Pounds: "8 libras", "20 lbs", "8lb", "ocho libras", "2 kilos" (-> 4.41); with `bare_number`, "8" too."""
    folded = fold(text)
    match = _weight_pattern().search(folded)
    if match:
        value = _number(match.group(1))
        if value is not None and value > 0:
            value = value * float(lexicon()["weight_units"][match.group(2)]) + (0.5 if match.group(3) else 0.0)
            return round(value, 2)
    if bare_number:
        number = re.fullmatch(r"\D{0,12}?(\d{1,3}(?:[.,]\d{1,2})?)\D{0,12}", folded.strip())
        if number:
            return _number(number.group(1))
    return None


@lru_cache(maxsize=8)
def _quantity_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(rf"(?<![\d.,])(\d[\d.,]{{0,12}})\s*(?:{'|'.join(re.escape(w) for w in words)})")


def extract_quantity(text: str, words: tuple[str, ...]) -> int | None:
    """A number of packages: "500 paquetes", "10,000 paquetes/mes" -> 10000."""
    match = _quantity_pattern(words).search(fold(text)) if any(ch.isdigit() for ch in text) else None
    if not match:
        return None
    digits = re.sub(r"\D", "", re.sub(r"[.,]\d{1,2}$", "", match.group(1)))
    return int(digits) if digits and len(digits) <= 9 else None


# --- service point and day ------------------------------------------------------------------------


@lru_cache(maxsize=16384)
def _fuzzy_place(phrase: str) -> str | None:
    lang = language()
    best = process.extractOne(phrase, lang.fuzzy_names, scorer=fuzz.ratio, score_cutoff=POINT_FUZZY_CUTOFF)
    return None if best is None else str(best[0])


def _unknown(word: str) -> bool:
    return not word.isdigit() and not is_word(word) and word not in language().aliases


Place = tuple[int, int, frozenset[str]]  # start token, end token, ids of the points it names (none: not a point)


@lru_cache(maxsize=4096)
def _places(words: tuple[str, ...]) -> tuple[Place, ...]:
    return tuple(_mentions(language().nlp.make_doc(" ".join(words))))


def places(doc: Doc) -> tuple[Place, ...]:
    """Every place a message names, exactly or misspelled ("santa anna"), in text order."""
    return _places(tuple(token.text for token in doc))


def _mentions(doc: Doc) -> list[Place]:
    """Places named exactly (phrase matcher) or misspelled (rapidfuzz, on n-grams with an unknown word only)."""
    lang = language()
    strings = doc.vocab.strings
    words = [token.text for token in doc]
    found = [(s, e, lang.aliases[strings[m]]) for m, s, e in non_overlapping(lang.places(doc))]
    taken = {i for s, e, _ in found for i in range(s, e)}
    for i in (i for i, word in enumerate(words) if i not in taken and _unknown(word)):
        for start, end in ((i, i + 1), (i - 1, i + 1), (i, i + 2), (i - 2, i + 1), (i - 1, i + 2), (i, i + 3)):
            if start < 0 or end > len(words) or taken.intersection(range(start, end)):
                continue
            phrase = " ".join(words[start:end])
            name = _fuzzy_place(phrase) if len(phrase) >= 5 else None
            if name is not None:
                found.append((start, end, lang.aliases[name]))
                taken.update(range(start, end))
                break
    return sorted(found, key=lambda f: f[0])


def resolve_point(doc: Doc) -> tuple[str | None, tuple[str, ...]]:
    """The one point a message names, else the points an ambiguous name could be ("San Salvador": two).

    With an origin and a destination ("de X a Y", "desde X hasta Y") the destination counts; a place
    ruled out ("y no en X") does not; of several points without such words, the last one ("no en Santa
    Ana, mejor en San Miguel"). A place without a point ("Chalate") names none.
    """
    lex = lexicon()
    words = [token.text for token in doc]
    mentions = [(start, ids) for start, _, ids in places(doc)  # "no en San Miguel": ruled out
                if not set(words[max(0, start - 2):start]) & set(lex["negation_markers"])]
    if not mentions:
        return None, ()

    def before(start: int) -> str:
        return doc[start - 1].text if start > 0 else ""

    to = [ids for start, ids in mentions if before(start) in lex["destination_markers"]]
    if to:
        chosen = to[-1]
    else:
        named = [ids for start, ids in mentions if ids]
        targets = [ids for start, ids in mentions if ids and before(start) not in lex["origin_markers"]]
        if not named:
            return None, ()
        chosen = (targets or named)[-1]
    if len(chosen) == 1:
        return next(iter(chosen)), ()
    return None, tuple(sorted(chosen))


@cache
def point_ids() -> frozenset[str]:
    """The canonical ids of the service points."""
    return frozenset(point["id"] for point in lexicon()["points"])


def find_point(doc: Doc) -> str | None:
    """The canonical id of the one point a message names (see `resolve_point`)."""
    return resolve_point(doc)[0]


def find_day(doc: Doc) -> str | None:
    """The day a message speaks of: monday..sunday, today, tomorrow, yesterday, weekend, holiday."""
    strings = doc.vocab.strings
    morning = lexicon()["morning_markers"]
    for match_id, start, _ in non_overlapping(language().days(doc)):
        value = strings[match_id]
        if value == "tomorrow" and start > 0 and doc[start - 1].text in morning:
            continue  # "en la mañana": the morning
        return str(value)
    return None


def non_overlapping(matches: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Matches without overlaps, the longest first kept, in text order."""
    kept: list[tuple[int, int, int]] = []
    for match in sorted(matches, key=lambda m: (m[1] - m[2], m[1])):
        if all(match[2] <= s or match[1] >= e for _, s, e in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m[1])
