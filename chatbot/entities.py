"""Entities of a customer message: tracking code, weight, service point, place, day; and the language resources.

The vocabulary comes from `chatbot/lexicon/es_sv.yaml` (`lexicon()`); the spaCy pipeline
(`spacy.blank("es")` with the lookup lemmatizer of spacy-lookups-data, plus phrase matchers
built from the lexicon for points and days) is built once per process (`language()`).
Pure functions of the text: no I/O besides reading the lexicon and the lookup tables once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import spacy
import yaml
from rapidfuzz import fuzz, process
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from services import geography
from services.normalize import fold, normalize

LEXICON_PATH = Path(__file__).resolve().parent / "lexicon" / "es_sv.yaml"
POINT_FUZZY_CUTOFF = 88.0
_VOWEL_ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú", "n": "ñ"}
_SV_PREFIX = re.compile(r"(?<![A-Z0-9])S[\s.]?V[\s\-.:#]*(?=[0-9O])")
_SEPARATORS = " -."
CODE_ATTEMPT_MAX = 20  # characters of a code attempt kept (and echoed back to the customer)
# A token that may be a code: letters/digits, groups joined by "-" or "." ("ABC-123", "2026.0105"); not part of
# an amount ("$35", "$ 350000", "1,500000"), a handle ("#123456", "@ana2020"), a phone ("+50370000001") or a
# date with "/" ("06/01/2026").
_CODE_TOKEN = re.compile(r"(?<![\w$#@/+])(?<!\d,)(?<!\$ )([A-Z0-9]+(?:[-.][A-Z0-9]+)*)(?![\w@/])")
_WEB_OR_MAIL = re.compile(r"\S+@\S+|\S*(?:HTTPS?://|WWW\.)\S*|\S+\.(?:COM|NET|ORG|SV)\b\S*")
_NOT_A_CODE = re.compile(
    r"^(?:\d{4}-\d{1,2}-\d{1,2}"  # a date: 2026-01-06
    r"|\d{1,2}[-.]\d{1,2}[-.]\d{2,4}"  # a date: 06-01-2026, 6.1.26
    r"|\d{8}-\d"  # a DUI: 01234567-8
    r"|\d{4}-\d{6}-\d{3}-\d"  # a NIT
    r"|\d{1,3}(?:[.,]\d{3})+(?:[.,]\d{1,2})?|\d+[.,]\d{1,2}"  # an amount: 1,500.00, 350.50
    r"|ENC-\d{6}-[A-Z0-9]{4})$"  # a case number of ours
)
_NUMBER_WITH_UNIT = re.compile(r"^\d+([A-Z]{1,8})$")
# Units after a number that make it a quantity, not a code (weight units come from the lexicon).
_UNITS = frozenset({"AM", "PM", "H", "HR", "HRS", "HORAS", "MIN", "MINS", "USD", "DLS", "DOLARES", "CTVS", "K",
                    "CM", "MM", "M", "MTS", "KM", "ML", "GB", "MB", "X"})


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
    place_keys: dict[str, tuple[str, ...]]  # normalised place name -> keys of the places of El Salvador it names
    weak_names: frozenset[str]  # place names that are also ordinary words: a place only after a preposition
    prepositions: frozenset[str]


def _point_aliases(lex: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Every point's name, city, department and extra aliases -> the point ids they name; every other
    place of El Salvador (faq_data/geography_sv.yaml) and `not_points` -> none, so that fuzzy matching
    never turns them into a point."""
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
    for place in [*lex.get("not_points", ()), *geography.geography().names]:
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
    geo = geography.geography()
    weak = frozenset(name for name in geo.weak_names if not aliases.get(name))
    fuzzy_names = tuple(name for name in aliases if len(name) >= 5 and name not in weak)
    place_keys = {normalize(name): keys for name, keys in geo.names.items()}
    return Language(nlp, table, places, days, aliases, fuzzy_names, place_keys, weak, geo.prepositions)


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

CODE_LENGTHS = (13, 14)  # digits after "SV"
# Letters read as the digit they look like, inside the digits of a code (docs/NLU.md, "How tracking codes are
# read"). Case matters: a lower-case "b" looks like a 6 and a capital "L" like nothing, so neither is read.
LOOKALIKES = {"O": "0", "o": "0", "I": "1", "i": "1", "l": "1", "|": "1", "S": "5", "s": "5", "B": "8"}
# "SV", "sv", "S V", "S.V.", "S-V" and "5V" (a 5 typed for the S), not inside a word or a number (`_prefixes`
# also leaves out the end of an address: "tienda.sv", "ana@correo.sv").
_CODE_PREFIX = re.compile(r"(?<![A-Za-z0-9@])(?:[Ss][ .\-]?[Vv]|5[Vv])\.?[ \t.\-:#]*")
_CODE_GROUP = re.compile(r"[A-Za-z0-9|]+")
_CODE_SEPARATOR = re.compile(r"\s*[\-.]?\s*")  # spaces (a line break too), one dash or one dot between groups
_NEXT_WORD = re.compile(r"[ \t]*([A-Za-z]+)")
_INVISIBLE = dict.fromkeys(range(0x200B, 0x2010)) | {0xFEFF: None, 0x2060: None}  # zero-width marks


@dataclass(frozen=True)
class CodeReading:
    """A tracking code as `read_codes` read it: its first reading and the other ones the same characters allow."""

    code: str  # "SV" and 13 or 14 digits
    others: tuple[str, ...] = ()  # other readings of the same characters; none: the reading is sure

    @property
    def sure(self) -> bool:
        return not self.others

    @property
    def candidates(self) -> tuple[str, ...]:
        return (self.code, *self.others)


def read_codes(text: str) -> list[CodeReading]:
    """Every tracking code a message holds, as people type them: the one normalisation of tracking codes.

    A code is "SV" and 13 or 14 digits ("SV20260106012345"). The rules, in order:
    1. The text is read as typed (NFKC: full-width digits are digits; zero-width marks are dropped).
    2. The prefix is "SV" in any case ("sv", "Sv"), with at most one space, dot or dash inside ("S V", "S.V.",
       "S-V"), or "5V" (a 5 typed for the S); not inside a word, a number or a web or mail address ("tienda.sv").
       Spaces, dots, dashes, ":" and "#" may follow it ("SV: 2026…", "SV-2026…").
    3. The digits come in groups of letters and digits; between two groups one separator: spaces, or one dash
       or one dot with spaces around it ("2026 0106 012345", "2026-0106-012345", "2026.0106.012345").
    4. Inside a group these letters are read as digits: O and o as 0; I, i, l (lower-case L) and | as 1; S and s
       as 5; B (capital only) as 8 (`LOOKALIKES`). A group is read whole when it holds only digits and such
       letters and at least one real digit ("2O26", "OO12").
    5. A group with other letters ends the code: its digits (and look-alike letters) before its first other
       letter count, without look-alike letters right before that letter ("012345son" -> "012345");
       "8lbs" after a separator is a weight, not digits of a code.
    6. A later group is not read when it would make the digits more than 14, when it is a weight ("8lb", or
       followed by a weight unit: "SV2026010601234 8 libras") or when it has no real digit ("SV… SI"). More
       than 14 digits in the first group is no code at all ("SV202601060123456789").
    7. The code is "SV" and the digits read. When the same characters also read as another code of 13 or 14
       digits (stopping one group earlier, "SV 2026 0106 01234 5", or without a look-alike letter at the end of
       a group, "SV2026010601234S"), the reading is not sure: `others` holds the other readings, longest
       first, and the bot asks which it is (chatbot/dialog/tracking.py `confirm_code`), never guesses.
    Digits without "SV" are a code only where the bot asked for one (`extract_bare_code`), and a code broken
    over two messages is joined by `join_code`.
    """
    raw = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    readings: list[CodeReading] = []
    for prefix in _prefixes(raw):
        stops = _digit_stops(raw, prefix.end())
        valid = list(dict.fromkeys(d for d in reversed(stops) if len(d) in CODE_LENGTHS))
        if valid:
            readings.append(CodeReading("SV" + valid[0], tuple("SV" + d for d in valid[1:])))
    return readings


def _prefixes(raw: str) -> Iterator[re.Match[str]]:
    """The code prefixes of a text, but the ".sv" that ends a web or mail address ("www.envios.sv 2026…")."""
    for prefix in _CODE_PREFIX.finditer(raw):
        start, end = prefix.start(), prefix.start() + 2
        domain = start >= 2 and raw[start - 1] == "." and raw[start - 2].isalnum() and raw[start:end] == "sv"
        if not (domain and not raw[end:end + 1].isalnum()):
            yield prefix


def _group_digits(group: str) -> str | None:
    """A group of only digits and look-alike letters, with at least one real digit, as its digits; else None."""
    if not any(ch.isdigit() for ch in group) or not all(ch.isdigit() or ch in LOOKALIKES for ch in group):
        return None
    return "".join(LOOKALIKES.get(ch, ch) for ch in group)


def _leading_digits(group: str) -> str:
    """The digits a group starts with before a letter that is no look-alike ("012345son" -> "012345")."""
    end = 0
    while end < len(group) and (group[end].isdigit() or group[end] in LOOKALIKES):
        end += 1
    head = group[:end].rstrip("".join(LOOKALIKES))
    return _group_digits(head) or ""


def _digit_stops(raw: str, start: int) -> list[str]:
    """The digits read after a prefix, at every place the code could end (rules 3 to 7), in text order."""
    stops: list[str] = []
    digits, i = "", start
    while (group := _CODE_GROUP.match(raw, i)) is not None:
        text, later = group.group(), i > start
        full = _group_digits(text)
        quantity = _with_unit(text.upper()) and sum(ch.isdigit() for ch in text) <= 3  # "8lb"
        if later and (quantity or _unit_after(raw, group.end())):
            break
        if full is None:
            lead = _leading_digits(text)
            if lead and len(digits) + len(lead) <= max(CODE_LENGTHS):
                stops.append(digits + lead)
            break
        trimmed = _group_digits(text.rstrip("".join(k for k in LOOKALIKES if k.isalpha())))
        if trimmed is not None and trimmed != full and len(digits) + len(trimmed) <= max(CODE_LENGTHS):
            stops.append(digits + trimmed)  # the group without its look-alike letters at the end
        if len(digits) + len(full) > max(CODE_LENGTHS):
            break
        digits += full
        stops.append(digits)
        separator = _CODE_SEPARATOR.match(raw, group.end())
        if separator is None or not separator.group():
            break
        i = separator.end()
    return stops


def _unit_after(raw: str, end: int) -> bool:
    """Whether a weight unit follows ("… 8 libras"): the group is a weight, not digits of a code. Only weight
    units: "x" ("012345 x favor") or "m" are words after a code more often than units."""
    word = _NEXT_WORD.match(raw, end)
    return word is not None and word.group(1).lower() in lexicon()["weight_units"]


def extract_tracking_code(text: str) -> str | None:
    """The first code of the message that reads only one way (`read_codes`); None otherwise."""
    return next((r.code for r in read_codes(text) if r.sure), None)


def extract_tracking_codes(text: str) -> list[str]:
    """Every code of the message that reads only one way, in order, each once ("SV2026… y SV2026…")."""
    return list(dict.fromkeys(r.code for r in read_codes(text) if r.sure))


def unsure_code(text: str) -> CodeReading | None:
    """The first code of the message that reads more than one way (asked about, never guessed); else None."""
    return next((r for r in read_codes(text) if not r.sure), None)


def _only_digits(text: str) -> str | None:
    """A text made only of groups of digits and look-alike letters (rules 3 and 4 of `read_codes`), as its
    digits; None when anything else is in it."""
    raw = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).strip(" \t\n.,;!")
    groups = [g for g in re.split(r"[ \t\n]*[\-.]?[ \t\n]+|[ \t\n]*[\-.][ \t\n]*", raw) if g]
    read = [_group_digits(g) for g in groups]
    if not read or any(r is None for r in read):
        return None
    return "".join(r for r in read if r)


def code_fragment(text: str) -> str | None:
    """The start of a code typed with its "SV" but short of digits ("SV2026 0106" -> "SV20260106"), read as in
    `read_codes` (3 to 12 digits); None otherwise. The dialog keeps it for the next message (`join_code`)."""
    raw = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    for prefix in _prefixes(raw):
        stops = _digit_stops(raw, prefix.end())
        if stops and 3 <= len(stops[-1]) < min(CODE_LENGTHS):
            return "SV" + stops[-1]
    return None


def join_code(fragment: str, text: str) -> str | None:
    """A code broken over two messages: `fragment` ("SV20260106", from `code_fragment`, or a whole code that
    was not found) and a next message of digits only ("0112 34", "O112-34"), joined ("SV20260106011234").
    The result may still be short of digits (another fragment); None when the message is not digits only or
    the joined digits are more than 14."""
    digits = _only_digits(text)
    if digits is None or not fragment.startswith("SV"):
        return None
    joined = fragment + digits
    return joined if len(joined) - 2 <= max(CODE_LENGTHS) else None


def looks_like_code(text: str) -> bool:
    """Whether the message holds a tracking-code attempt that is not a valid code (see `code_attempt`)."""
    return code_attempt(text) is not None


def code_attempt(text: str) -> str | None:
    """A token typed as a tracking code that is not a valid one, upper case without separators; else None.

    An attempt is (checked in this order, on the text with e-mail and web addresses left out):
    - "SV" and 6 or more digits that do not make a valid code ("SV 2026 0106 0112" -> "SV202601060112"; the
      start of a code as `code_fragment` reads it, look-alike letters included, else the digits after "SV");
    - a token of letters and digits (groups joined by "-" or ".") with at least 1 letter and 3 digits,
      5-20 characters ("ABC123", "abc-123", "A1B2C3"), unless it is a number with a unit ("100lbs", "8kg",
      "1030am", "35usd") or a case number ("ENC-260106-XDEJ");
    - 6 or more digits ("el código es 12345678", "20260105007834"), unless they are a Salvadoran phone
      (8 digits starting with 2, 6 or 7, or 503 and 8 digits: "7000-0001"), a date ("2026-01-06",
      "06-01-2026"), a DUI ("01234567-8") or an amount ("1,500.00", "$350000").
    Not attempts: a valid code (that is `extract_tracking_code`), "12345", "8lb", "$35", "06/01/2026".
    """
    if sum(map(str.isdigit, text)) < 3 or extract_tracking_code(text) is not None:
        return None  # every attempt has 3 digits or more
    fragment = code_fragment(text)  # the start of a code, read as `read_codes` reads codes
    if fragment is not None and len(fragment) >= 8:
        return fragment
    up = _WEB_OR_MAIL.sub(" ", fold(text).upper())
    for match in _SV_PREFIX.finditer(up):
        read = "".join("0" if ch == "O" else ch for ch in up[match.end():match.end() + 24] if ch.isdigit() or ch == "O")
        if len(read) >= 6:
            return ("SV" + read)[:CODE_ATTEMPT_MAX]
    for found in _CODE_TOKEN.finditer(up):
        raw: str = found.group(1)
        if _NOT_A_CODE.match(raw):
            continue
        token = raw.replace("-", "").replace(".", "")
        digits = sum(ch.isdigit() for ch in token)
        letters = len(token) - digits
        if letters and digits >= 3 and 5 <= len(token) <= CODE_ATTEMPT_MAX and not _with_unit(token):
            return token
        if not letters and digits >= 6 and not _is_phone(token):
            return token[:CODE_ATTEMPT_MAX]
    return None


def _with_unit(token: str) -> bool:
    """"100LBS", "8KG", "1030AM": a number and a unit (of weight, time, money), not a code."""
    match = _NUMBER_WITH_UNIT.match(token)
    return match is not None and (match.group(1) in _UNITS or match.group(1).lower() in lexicon()["weight_units"])


def _is_phone(digits: str) -> bool:
    return (len(digits) == 8 and digits[0] in "267") or (len(digits) == 11 and digits.startswith("503"))


def extract_bare_code(text: str) -> str | None:
    """13 or 14 digits with nothing else, read as in `read_codes` (when the bot asked for a code, the "SV" may be
    left out): "2026 0106 O12345" -> "SV20260106012345"."""
    raw = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).strip()
    prefix = _CODE_PREFIX.match(raw)
    digits = _only_digits(raw[prefix.end():] if prefix else raw)
    return "SV" + digits if digits is not None and len(digits) in CODE_LENGTHS else None


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
_Mention = tuple[int, int, frozenset[str], str]  # a Place and the normalised name it was read as


@lru_cache(maxsize=4096)
def _places(words: tuple[str, ...]) -> tuple[_Mention, ...]:
    return tuple(_mentions(language().nlp.make_doc(" ".join(words))))


def words_of(doc: Doc) -> tuple[str, ...]:
    """The doc's token texts, read once per doc (making spaCy Token objects is what costs)."""
    words: tuple[str, ...] | None = doc.user_data.get("words")
    if words is None:
        words = doc.user_data["words"] = tuple(token.text for token in doc)
    return words


def places(doc: Doc) -> tuple[Place, ...]:
    """Every place a message names, exactly or misspelled ("santa anna"), in text order."""
    return tuple((s, e, ids) for s, e, ids, _ in _places(words_of(doc)))


def _mentions(doc: Doc) -> list[_Mention]:
    """Places named exactly (phrase matcher) or misspelled (rapidfuzz, on n-grams with an unknown word only).

    A name that is also an ordinary word ("Dolores", "Victoria") counts only after a preposition.
    """
    lang = language()
    strings = doc.vocab.strings
    words = [token.text for token in doc]
    found = [(s, e, lang.aliases[strings[m]], str(strings[m])) for m, s, e in non_overlapping(lang.places(doc))
             if strings[m] not in lang.weak_names or (s > 0 and words[s - 1] in lang.prepositions)]
    taken = {i for s, e, _, _ in found for i in range(s, e)}
    for i in (i for i, word in enumerate(words) if i not in taken and _unknown(word)):
        for start, end in ((i, i + 1), (i - 1, i + 1), (i, i + 2), (i - 2, i + 1), (i - 1, i + 2), (i, i + 3)):
            if start < 0 or end > len(words) or taken.intersection(range(start, end)):
                continue
            phrase = " ".join(words[start:end])
            name = _fuzzy_place(phrase) if len(phrase) >= 5 else None
            if name is not None:
                found.append((start, end, lang.aliases[name], name))
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
    words = words_of(doc)
    mentions = [(start, ids) for start, _, ids in places(doc)  # "no en San Miguel": ruled out
                if not set(words[max(0, start - 2):start]) & set(lex["negation_markers"])]
    if not mentions:
        return None, ()

    def before(start: int) -> str:
        return words[start - 1] if start > 0 else ""

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


def resolve_place(doc: Doc) -> tuple[str | None, tuple[str, ...]]:
    """The place of El Salvador a message names when it is not a point's ("vivo en Gotera" ->
    "dis:san_francisco_gotera"), else the keys an ambiguous name could be ("San Isidro": two).

    The mention is chosen as in `resolve_point` (the destination, else the last place not ruled out
    or marked as the origin); a mention that names a point gives (None, ()): `point` covers it, unless
    the shipment stays inside it ("dentro de San Salvador" -> "dep:san_salvador", see `ships_within`).
    """
    lex, lang = lexicon(), language()
    words = words_of(doc)
    mentions = [(start, ids, name) for start, _, ids, name in _places(words)
                if not set(words[max(0, start - 2):start]) & set(lex["negation_markers"])]
    if not mentions:
        return None, ()
    to = [m for m in mentions if m[0] > 0 and words[m[0] - 1] in lex["destination_markers"]]
    targets = [m for m in mentions if not (m[0] > 0 and words[m[0] - 1] in lex["origin_markers"])]
    start, ids, name = (to or targets or mentions)[-1]
    keys = () if ids and not _within_before(words, start) else lang.place_keys.get(name, ())
    if len(keys) == 1:
        return keys[0], ()
    return None, keys


def _within_before(words: tuple[str, ...], start: int) -> bool:
    return any(list(words[max(0, start - len(m.split())):start]) == m.split()
               for m in geography.geography().within_markers)


@cache
def _within_pattern() -> re.Pattern[str]:
    markers = "|".join(re.escape(m) for m in geography.geography().within_markers)
    return re.compile(rf"\b(?:{markers})\b")


def ships_within(doc: Doc) -> bool:
    """Whether the message keeps a shipment inside one place ("¿y dentro de San Salvador?"): both ends there."""
    if not _within_pattern().search(doc.text):
        return False
    words = words_of(doc)
    return any(_within_before(words, start) for start, _, _, _ in _places(words))


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
