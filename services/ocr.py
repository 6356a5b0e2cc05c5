"""Text in a customer's photo, read by Tesseract (Debian's `tesseract-ocr` with the Spanish data).

The one module that knows the OCR engine. `find_engine` looks for the `tesseract` binary and its
languages once (the worker logs once at start-up when there is none: OCR is then off); `read_text`
runs it as a subprocess (`tesseract stdin stdout -l spa+eng --psm N`) on an image `prepare` made:
decoded with Pillow, turned upright from its EXIF orientation, grey, its longest side brought to
between MIN_SIDE and MAX_SIDE pixels (a 12-megapixel phone photo is read 4x faster at 2000 px, and
as well), and written as PNG. An image of more than MAX_PIXELS is refused before it is decoded.

One thread per run (OMP_THREAD_LIMIT=1): the worker's processes run side by side, and Tesseract's
own threads would only fight over the same cores.

Failure policy: never raises. A missing binary, a timeout, a crash or an image that cannot be
decoded give None (logged with the reason, never the text read).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

MAX_SIDE = 2000  # longest side, in pixels, of the image given to Tesseract
MIN_SIDE = 1200  # a smaller image is enlarged to this: Tesseract reads small print badly
MAX_PIXELS = 40_000_000  # larger images are not decoded at all (a "decompression bomb" or a panorama)
WANTED_LANGUAGES = ("spa", "eng")  # codes and labels are ASCII: either reads them; both read the words around
LIST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class OcrEngine:
    """The installed Tesseract: its path, the languages it reads with, the time one image may take."""

    binary: str
    languages: str  # "spa+eng"
    timeout_s: float


@cache
def installed_engine(timeout_s: float) -> OcrEngine | None:
    """`find_engine` looked up once per process (what is installed does not change while it runs)."""
    return find_engine(timeout_s)


def find_engine(timeout_s: float, binary: str = "tesseract") -> OcrEngine | None:
    """The installed engine, or None when the binary or its language data is missing. Never raises."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        listed = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            [path, "--list-langs"], capture_output=True, text=True, timeout=LIST_TIMEOUT_S,
            check=False, env=_env())
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("tesseract --list-langs failed: %s", type(exc).__name__)
        return None
    installed = {line.strip() for line in (listed.stdout + listed.stderr).splitlines()}
    languages = [lang for lang in WANTED_LANGUAGES if lang in installed]
    if not languages:
        log.warning("tesseract has none of the languages %s", "+".join(WANTED_LANGUAGES))
        return None
    return OcrEngine(path, "+".join(languages), timeout_s)


def prepare(image: bytes) -> bytes | None:
    """The image as Tesseract reads it best: upright, grey, 1200-2000 px on its longest side, PNG.

    None when Pillow cannot decode it or it has more than MAX_PIXELS pixels.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS or min(width, height) < 1:
                    log.info("ocr: image of %sx%s px not read", width, height)
                    return None
                upright = ImageOps.exif_transpose(opened.convert("RGB") if opened.mode in ("P", "RGBA", "LA")
                                                  else opened) or opened
                grey = upright.convert("L")
        longest = max(grey.size)
        if longest > MAX_SIDE or longest < MIN_SIDE:
            scale = (MAX_SIDE if longest > MAX_SIDE else MIN_SIDE) / longest
            size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
            grey = grey.resize(size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        grey.save(out, "PNG")
        return out.getvalue()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            ValueError, SyntaxError) as exc:  # SyntaxError: Pillow's word for some malformed files
        log.info("ocr: image not decoded: %s", type(exc).__name__)
        return None


def read_text(engine: OcrEngine, image: bytes, *, psm: int = 6) -> str | None:
    """The text Tesseract reads in a `prepare`d image with page segmentation mode `psm` (6: one block of
    text, a receipt; 11: sparse text, a label). None on a timeout or a failure. Never raises."""
    command = [engine.binary, "stdin", "stdout", "-l", engine.languages, "--psm", str(psm)]
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell; the image goes to stdin
            command, input=image, capture_output=True, timeout=engine.timeout_s, check=False,
            env=_env())
    except subprocess.TimeoutExpired:
        log.warning("ocr: tesseract took more than %.1f s", engine.timeout_s)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("ocr: tesseract could not run: %s", type(exc).__name__)
        return None
    if done.returncode != 0:
        log.warning("ocr: tesseract exited with status %s", done.returncode)
        return None
    return done.stdout.decode("utf-8", errors="replace")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}
