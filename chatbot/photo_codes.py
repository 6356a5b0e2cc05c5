"""Tracking codes in a photo of a receipt or a label: OCR (services/ocr.py), then the bot's own code reader.

The text Tesseract reads goes through the same reader as a typed message (`entities.read_codes`, with its
normalisation of separators, lower case and letters typed for digits), after two repairs of what OCR, not
people, gets wrong (`ocr_repairs`):
- "5V" or "$V" at the start of a word is "SV" (an S read as a 5 or a $);
- up to two stray symbols between "SV" and the digits ("SV¥2026…", "SV:2026…") are dropped.
A code that reads two ways ("SV2026010601234S") counts with its first reading: the customer is asked about it
anyway, and only about a code the logistics core knows (chatbot/photo_reply.py).

A receipt is read as one block of text (`--psm 6`); when that finds no code, once more as sparse text
(`--psm 11`: a label with the code among a barcode and boxes). About 0.3 s of CPU per photo at most
sizes, one more run when the first finds nothing (docs/BENCHMARKS.md: "Photo codes").

Failure policy: never raises; no engine, an unreadable image or a timeout is "no code".
"""

from __future__ import annotations

import logging
import re

from chatbot.entities import read_codes
from services import ocr

log = logging.getLogger(__name__)

PAGE_MODES = (6, 11)  # one block of text (a receipt), then sparse text (a label)
_SV_MISREAD = re.compile(r"(?<![A-Za-z0-9])[5$][ .]?([Vv])(?=[^A-Za-z]{0,3}[0-9OoIlSsBb])")
_JUNK_AFTER_SV = re.compile(r"(?<![A-Za-z0-9])([Ss][ .]?[Vv])[^\w\s]{1,2}(?=[0-9OoIl])")


def ocr_repairs(text: str) -> str:
    """The OCR text with "5V"/"$V" read as "SV" and stray symbols after "SV" dropped (see the module doc)."""
    text = _SV_MISREAD.sub(lambda m: "S" + m.group(1), text)
    return _JUNK_AFTER_SV.sub(lambda m: m.group(1), text)


def codes_in_text(text: str) -> list[str]:
    """The tracking codes in text read from a photo, in reading order, each once."""
    return list(dict.fromkeys(reading.code for reading in read_codes(ocr_repairs(text))))


def codes_in_photo(engine: ocr.OcrEngine | None, image: bytes) -> list[str]:
    """The tracking codes printed in a photo (empty: none found, no OCR engine, or an unreadable image)."""
    if engine is None:
        return []
    prepared = ocr.prepare(image)
    if prepared is None:
        return []
    for psm in PAGE_MODES:
        text = ocr.read_text(engine, prepared, psm=psm)
        codes = codes_in_text(text) if text else []
        if codes:
            log.info("ocr: %s tracking code(s) found (psm %s)", len(codes), psm)
            return codes
    return []
