"""The output guard: a model's answer is sent only when it is short, plain and says nothing it was not given.

Checks, in order: not empty; at most 1,000 characters and 6 sentences;
WhatsApp formatting only (`**x**` becomes `*x*`; headings, tables, code
blocks and links are refused); no words of the instructions themselves (a
prompt leak); and every fact — money amounts, tracking and case codes, every
number (phones, times, days, weights), every capitalised word in the middle
of a sentence and every common first name (`first_names.txt`) anywhere —
must appear in the evidence: the results of the tools called for this
message, the company data given to the model, and the customer's own first
name. A refused answer is replaced by the rules' reply by the caller.

Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from services.normalize import fold_words

MAX_CHARS = 1000
MAX_SENTENCES = 6
LEAK_SHINGLE = 6  # this many consecutive words of the instructions in an answer is a leak
_MONEY = re.compile(r"(?:US)?\$\s?(\d[\d,]*(?:\.\d+)?)|\b(\d+(?:[.,]\d+)?)\s?(?:d[oó]lares|usd|centavos)\b", re.I)
_CODE = re.compile(r"\b[A-Z]{2,4}(?:[-\s]?[0-9A-Z]*\d[0-9A-Z]*){1,4}\b")
_DIGITS = re.compile(r"\d+")
_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)")
_CAPITALISED = re.compile(r"\b[A-ZÁÉÍÓÚÑ][a-záéíóúñü]{2,}\b")
_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)|https?://|www\.", re.I)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s", re.M)
_TABLE = re.compile(r"^\s*\|.*\|\s*$", re.M)
_DOUBLE_STARS = re.compile(r"\*\*(.+?)\*\*", re.S)
_DOUBLE_UNDERSCORES = re.compile(r"__(.+?)__", re.S)
_LEAK_MARKERS = ("reglas criticas", "datos de la empresa", "system prompt", "instrucciones del sistema",
                 "mis instrucciones son", "personalidad y tono")
# Capitalised words that are not names even when the Spanish word list does not know them.
COMMON_WORDS = frozenset(word for phrase in (
    "WhatsApp", "DUI", "NIT", "El Salvador", "Google Maps", "SMS", "Lunes", "Martes", "Miércoles", "Jueves",
    "Viernes", "Sábado", "Domingo", "Enero", "Febrero", "Marzo", "Abril", "Mayo", "Junio", "Julio", "Agosto",
    "Septiembre", "Octubre", "Noviembre", "Diciembre",
) for word in fold_words(phrase).split())


NAMES_FILE = Path(__file__).resolve().parent / "first_names.txt"


@functools.cache
def first_names() -> frozenset[str]:
    lines = NAMES_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(fold_words(line) for line in lines if line.strip() and not line.startswith("#"))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    text: str  # the answer as it may be sent (formatting fixed) when ok
    reason: str = ""  # why it was refused: empty | too_long | too_many_sentences | markdown | leak | unsupported_*


@dataclass(frozen=True)
class Evidence:
    """What an answer may state: tool results, the company data, the customer's own first name."""

    texts: tuple[str, ...]
    instructions: str = ""  # the prompt's rules (not its data): an answer must not repeat them

    def corpus(self) -> str:
        return "\n".join(self.texts)


def check(answer: str, evidence: Evidence) -> Verdict:
    text = _whatsapp(answer.strip())
    if not text:
        return Verdict(False, "", "empty")
    if len(text) > MAX_CHARS:
        return Verdict(False, "", "too_long")
    if len(_sentences(text)) > MAX_SENTENCES:
        return Verdict(False, "", "too_many_sentences")
    if _HEADING.search(text) or _TABLE.search(text) or "```" in text or _LINK.search(text):
        return Verdict(False, "", "markdown")
    if _leaks(text, evidence.instructions):
        return Verdict(False, "", "leak")
    reason = _unsupported(text, evidence.corpus())
    if reason:
        return Verdict(False, "", reason)
    return Verdict(True, text)


def _whatsapp(text: str) -> str:
    """Markdown emphasis WhatsApp shows differently, in WhatsApp's own form."""
    text = _DOUBLE_STARS.sub(r"*\1*", text)
    return _DOUBLE_UNDERSCORES.sub(r"_\1_", text)


def _sentences(text: str) -> list[str]:
    pieces: list[str] = []
    for line in text.splitlines():
        pieces += [p for p in _SENTENCE_END.split(line) if re.search(r"[^\W\d_]{2,}", p)]
    return pieces


def _words(text: str) -> list[str]:
    return fold_words(text).split()


def _leaks(text: str, instructions: str) -> bool:
    folded = " ".join(_words(text))
    if any(marker in folded for marker in _LEAK_MARKERS):
        return True
    source = _words(instructions)
    if len(source) < LEAK_SHINGLE:
        return False
    shingles = {" ".join(source[i:i + LEAK_SHINGLE]) for i in range(len(source) - LEAK_SHINGLE + 1)}
    words = folded.split()
    return any(" ".join(words[i:i + LEAK_SHINGLE]) in shingles for i in range(len(words) - LEAK_SHINGLE + 1))


def _money(text: str) -> set[float]:
    values: set[float] = set()
    for match in _MONEY.finditer(text):
        raw = (match.group(1) or match.group(2) or "").replace(",", "")
        try:
            values.add(round(float(raw), 2))
        except ValueError:
            continue
    return values


def _codes(text: str) -> set[str]:
    return {re.sub(r"[-\s]", "", m.group(0)) for m in _CODE.finditer(text) if sum(c.isdigit() for c in m.group(0)) >= 4}


def _unsupported(text: str, corpus: str) -> str:
    if not _money(text) <= _money(corpus):
        return "unsupported_amount"
    known_codes = _codes(corpus) | {re.sub(r"[-\s]", "", c) for c in re.findall(r"SV[\d\s-]{13,20}", corpus)}
    if not _codes(text) <= known_codes:
        return "unsupported_code"
    known_numbers = {n.lstrip("0") or "0" for n in _DIGITS.findall(corpus)}
    if any((n.lstrip("0") or "0") not in known_numbers for n in _DIGITS.findall(text)):
        return "unsupported_number"
    known_words = set(_words(corpus))
    for match in _CAPITALISED.finditer(text):
        word = fold_words(match.group(0))
        if word in known_words or word in COMMON_WORDS:
            continue
        if word in first_names() or not _sentence_start(text, match.start()):
            return "unsupported_name"
    return ""


def _sentence_start(text: str, index: int) -> bool:
    """Whether a word at `index` opens a sentence, a line or a list item (capitalised anyway)."""
    before = text[:index].rstrip(" \t*_¡¿\"'(•-–")
    return not before or before[-1] in ".!?…:\n" or not before[-1].isalnum() and before[-1] not in ",;"
