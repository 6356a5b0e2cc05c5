"""Text folding (services/normalize.py): the one home of it, and what each variant means."""

from __future__ import annotations

import pytest

from services.normalize import MAX_CHARS, fold, fold_words, normalize, words

# text -> (fold, fold_words)
TABLE = [
    ("Señor", "senor", "senor"),
    ("MARÍA  López!!", "maria  lopez!!", "maria lopez"),
    ("1️⃣2️⃣", "12", "12"),  # keycaps and variation selectors are marks: dropped
    ("hola\x00\x07mundo\u200b", "hola  mundo ", "hola mundo"),  # control and format characters -> spaces
    ("SV-2026.0106 / 3,5 lb", "sv-2026.0106 / 3,5 lb", "sv 2026 0106 3 5 lb"),  # punctuation kept, then not
    ("ÀÉÎÕÜ ç ﬁn", "aeiou c fin", "aeiou c fin"),  # compatibility forms decomposed too
    ("san_miguel", "san_miguel", "san miguel"),
    ("¿Qué?  👋 ", "¿que?  👋 ", "que"),  # emojis are not marks: fold keeps them, fold_words has no words there
    ("", "", ""),
]


@pytest.mark.parametrize(("text", "folded", "folded_words"), TABLE)
def test_the_two_folds(text: str, folded: str, folded_words: str) -> None:
    assert fold(text) == folded
    assert fold_words(text) == folded_words
    assert fold_words(text) == fold_words(fold(text))  # fold_words goes one step further than fold


def test_folding_takes_the_text_whole_and_normalize_cuts_it() -> None:
    long = "á " * 3000
    assert fold(long) == "a " * 3000 and fold_words(long) == " ".join(["a"] * 3000)
    assert len(words(long)) == MAX_CHARS // 2


@pytest.mark.parametrize(("text", "normal"), [
    ("¡¡HOLAAA!! 👋 ¿Qué onda?", "hola que onda"), ("graciass", "gracias"), ("llegó el carro", "llego el carro"),
    ("buenoo", "bueno"), ("SV 2026", "sv 2026"),
])
def test_normalize_squeezes_emphasis(text: str, normal: str) -> None:
    assert normalize(text) == normal
