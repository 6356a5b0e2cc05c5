"""Loose matching of what a customer types against the core's records.

Customers write names and places the way they remember them: without
accents, in lower case, with an initial instead of a first name ("M. López"
for "María López"), or the other way round. The sandbox core matches the way a
forgiving back-office search would; nothing here is clever on purpose.
"""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")
_CODE_NOISE = re.compile(r"[\s\-]+")
_MIN_SUBSTRING = 3


def fold(text: str) -> str:
    """Lower case without accents or punctuation, words separated by one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _NON_WORD.sub(" ", plain).strip()


def normalise_tracking_code(code: str) -> str:
    """The canonical form of a tracking code: upper case, no spaces or dashes."""
    return _CODE_NOISE.sub("", code).upper()


def phone_digits(phone: str) -> str:
    """Digits of a phone number, with El Salvador's 503 prefix added to a bare 8-digit number.

    A '+' typed into a URL without encoding arrives as a space, so only digits count.
    """
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 8:
        digits = "503" + digits
    return digits


def _tokens_match(query_token: str, name_token: str) -> tuple[bool, bool]:
    """(matches, is a full-word match); a one-letter token is an initial of the other word."""
    if query_token == name_token:
        return True, len(query_token) > 1
    if len(query_token) == 1 and name_token.startswith(query_token):
        return True, False
    if len(name_token) == 1 and query_token.startswith(name_token):
        return True, False
    return False, False


def name_matches(query: str, name: str) -> bool:
    """Whether `query` plausibly refers to the person called `name`.

    True when the folded query starts a word of the folded name ("lopez" in
    "maria lopez"), or when every query word lines up, in order, with a word of
    the name, initials matching the words they abbreviate, and at least one
    word matches in full (so "M." alone matches nobody).
    """
    folded_query, folded_name = fold(query), fold(name)
    if not folded_query or not folded_name:
        return False
    if len(folded_query) >= _MIN_SUBSTRING and f" {folded_name}".find(f" {folded_query}") >= 0:
        return True
    name_tokens = folded_name.split()
    position, full_matches = 0, 0
    for query_token in folded_query.split():
        while position < len(name_tokens):
            matched, full = _tokens_match(query_token, name_tokens[position])
            position += 1
            if matched:
                full_matches += int(full)
                break
        else:
            return False
    return full_matches > 0


def place_matches(query: str, *candidates: str | None) -> bool:
    """Whether `query` names the same place as any candidate (point id, city or department)."""
    folded = fold(query.replace("_", " "))
    return any(c is not None and fold(c.replace("_", " ")) == folded for c in candidates)
