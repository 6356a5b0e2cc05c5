"""Text folding: what a customer typed (or a record holds), reduced to comparable text. The one home of it.

Two variants, each a step further than the one before:
- `fold`: accents and every other mark gone (ñ -> n, as WhatsApp writers do;
  also emoji variation selectors and keycaps), lower case, control characters
  as spaces; punctuation and spacing kept (decimals, the dashes of a tracking
  code, "!!!"). For entity patterns and for comparing whole texts.
- `fold_words`: `fold`, then every run of anything but a-z and 0-9 is one space,
  trimmed: the words alone. For comparing names, places and keywords with
  records, and for the lexicon's cue phrases.
`normalize` goes on to squeeze letters repeated for emphasis ("holaaa") and is
what the router scores. `sound_key` is a rough phonetic key of Salvadoran
spelling ("kiero" and "quiero", "enbiar" and "enviar" share one) used to correct
typos. (console/search.py keeps `fold_like_sql`, a mirror of a SQL expression:
a different thing on purpose.)

All work is linear in the input. `fold` and `fold_words` take the text whole;
`normalize` cuts it at `MAX_CHARS` (WhatsApp's own limit is 4,096 characters),
as does the router on entry, so a hostile message costs bounded time.
"""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 4096

# Letters that Spanish legitimately doubles inside a word (llegó, carro, acción, leer, cooperar, innato).
_LEGIT_DOUBLES = frozenset("lrceon")
_TRIPLE = re.compile(r"([a-z])\1{2,}")
_DOUBLE = re.compile(r"([a-z])\1")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_REPEAT = re.compile(r"([a-zC])\1+")


def fold(text: str) -> str:
    """No accents or other marks, lower case, control characters as spaces; punctuation and spacing kept.

    "¡MARÍA  López!!" -> "¡maria  lopez!!", "Señor" -> "senor", "1️⃣2️⃣" -> "12".
    """
    if not text.isascii():  # decompose, then drop accents, tildes, variation selectors and keycap marks
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if unicodedata.category(ch)[0] != "M")
    text = text.lower()
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text


def fold_words(text: str) -> str:
    """The folded words alone, one space apart: "¡MARÍA  López!!" -> "maria lopez", "SV-2026" -> "sv 2026"."""
    return _NON_WORD.sub(" ", fold(text)).strip()


def _squeeze_double(match: re.Match[str]) -> str:
    letter = match.group(1)
    return match.group(0) if letter in _LEGIT_DOUBLES else letter


def squeeze(word: str) -> str:
    """Letters repeated for emphasis: 3+ become one ("holaaa"), doubles Spanish never writes become one.

    "graciass" -> "gracias", but "llego", "carro", "accion", "leer" stay; a final "oo" is emphasis ("buenoo").
    """
    word = _TRIPLE.sub(r"\1", word)
    word = _DOUBLE.sub(_squeeze_double, word)
    if word.endswith("oo") and len(word) > 3:
        word = word[:-1]
    return word


def normalize(text: str) -> str:
    """Comparable words separated by single spaces: "¡¡HOLAAA!! 👋 ¿Qué onda?" -> "hola que onda"."""
    words = fold_words(text[:MAX_CHARS]).split()
    return " ".join(w if w.isdigit() else squeeze(w) for w in words)


def words(text: str) -> list[str]:
    """The normalised words of a text."""
    return normalize(text).split()


_SOUND_RULES = (
    (re.compile(r"ch"), "C"),  # keep "ch" apart from c/k and h
    (re.compile(r"h"), ""),
    (re.compile(r"qu(?=[ei])|k|c(?=[aou])|c$|q"), "k"),
    (re.compile(r"c(?=[ei])|z|x(?=[ei])"), "s"),
    (re.compile(r"v"), "b"),
    (re.compile(r"bu(?=[aeio])|gu(?=[ao])|w"), "w"),  # "wenas" / "buenas", "wapo" / "guapo"
    (re.compile(r"ll|y(?=[aeiou])"), "y"),
    (re.compile(r"gu(?=[ei])"), "g"),
    (re.compile(r"g(?=[ei])"), "j"),
)


def sound_key(word: str) -> str:
    """A rough key of how a word sounds in Salvadoran Spanish (seseo, silent h, b/v, ll/y, c/k/qu)."""
    for pattern, repl in _SOUND_RULES:
        word = pattern.sub(repl, word)
    return _REPEAT.sub(r"\1", word)
