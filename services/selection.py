"""Picking a package from a list by what people remember of it, not by its number.

"el de Pedro Ramírez" (the other party's name), "el que va para Santa Ana"
(a city or point), "el que ya llegó" (its status, read by the router as a cue),
"el que termina en 345" (the last digits of the code). Each package of the list
scores what the message says of it; the best-scoring packages are the pick: one
is the answer, several are an ambiguous pick the dialog asks about, none means
the message did not describe any of them. Names and places match with typos
(rapidfuzz). Pure: the packages come from the caller, which only ever passes
the writer's own (`services.lookup`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz import fuzz

from core_api_client import Package
from services.normalize import fold_words
from services.tracking import ARRIVED, DELIVERED, roles

NAME_CUTOFF = 84.0  # a word of the message is this close to a word of the name (0-100)
CODE_DIGITS_MIN = 3  # "termina en 345": at least this many final digits
# Cues (chatbot/cues.py) that describe a package's status, and the core statuses they mean.
STATUS_CUES = {
    "state_ready": frozenset({ARRIVED}),
    "state_on_the_way": frozenset({"RECEIVED_AT_ORIGIN", "IN_TRANSIT"}),
    "state_delivered": frozenset({DELIVERED}),
}
# Words too common in descriptions to identify anyone ("el de la señora").
_SKIP = frozenset({"el", "la", "los", "las", "de", "del", "que", "para", "va", "viene", "mi", "su", "ya", "en", "a",
                   "al", "paquete", "encargo", "uno", "una", "senor", "senora", "don", "dona", "nina", "nino"})
_DIGITS = re.compile(r"\d{3,}")


def _words(text: str) -> list[str]:
    return [w for w in fold_words(text).split() if w not in _SKIP and len(w) >= 3]


def _name_score(said: list[str], name: str) -> float:
    """How many words of the name the message says (typos allowed): 0, 1 or 2 (first name and surname)."""
    wanted = _words(name)
    hits = sum(1 for w in wanted if any(fuzz.ratio(w, s) >= NAME_CUTOFF for s in said))
    return float(min(hits, 2))


def _place_score(folded: str, said: list[str], places: Iterable[str]) -> float:
    for place in places:
        words = _words(place)
        if not words:
            continue
        if f" {fold_words(place)} " in f" {folded} ":
            return 2.0
        if all(any(fuzz.ratio(w, s) >= NAME_CUTOFF for s in said) for w in words):
            return 2.0
    return 0.0


def _score(package: Package, folded: str, said: list[str], digits: list[str], cues: frozenset[str],
           writer_phone: str | None, point_names: dict[str, str]) -> float:
    sender, recipient = roles(package, writer_phone)
    others = ([package.recipient.name] if sender else []) + ([package.sender.name] if recipient else [])
    score = max((_name_score(said, name) for name in others), default=0.0) * 1.5
    destination = [package.destination_city or "", point_names.get(package.destination_point, "")]
    score += _place_score(folded, said, destination)
    score += 0.5 * _place_score(folded, said, [package.origin_city or ""])
    score += 3.0 * any(package.tracking_code.endswith(d) for d in digits)
    score += 2.0 * any(package.status in statuses for cue, statuses in STATUS_CUES.items() if cue in cues)
    return score


def pick(packages: list[Package], text: str, cues: frozenset[str], writer_phone: str | None,
         point_names: dict[str, str] | None = None) -> list[Package]:
    """The packages the message describes best (several when it fits them equally); [] when it fits none."""
    folded = fold_words(text)
    said = _words(text)
    digits = [d for d in _DIGITS.findall(folded) if len(d) >= CODE_DIGITS_MIN]
    scored = [(_score(p, folded, said, digits, cues, writer_phone, point_names or {}), p) for p in packages]
    best = max((s for s, _ in scored), default=0.0)
    return [p for s, p in scored if s > 0 and s == best]
