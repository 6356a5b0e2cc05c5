"""A photo of a receipt or a label with a tracking code: the code is read (Tesseract) and confirmed with the customer.

The photos are drawn here with Pillow (DejaVu fonts, fonts-dejavu-core; PIL's own font scaled up without it):
a receipt of the demo company with "GUIA: SV…" among the usual lines, a barcode and a total. Tesseract itself
is installed by `make test` (scripts/devservices.py); the tests that need it are skipped only where it is absent.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from chatbot import photo_codes
from services import ocr

CODE = "SV20260106012345"  # a package of the sandbox core's demo data (in transit)
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
MONO = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf")
PAPER = (250, 248, 240)


def _font(path: Path, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size)


def receipt_photo(code_line: str | None = f"GUIA: {CODE}", *, width: int = 800, size: int = 34, rotate: float = 0,
                  fmt: str = "PNG", quality: int = 85) -> bytes:
    """A receipt like a branch prints it, photographed (optionally turned a little and saved as a JPEG)."""
    height = round(width * 1.25)
    img = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(img)
    text, mono = _font(FONT, size), _font(MONO, size + 4)
    scale = size / 34
    y = round(40 * scale)
    for line in ("ENCOMIENDAS DEMO S.A. de C.V.", "Sucursal San Miguel", "Fecha: 05/01/2026 10:32",
                 "Remitente: Pedro Ramírez", "Destino: Santa Ana", "Peso: 8 lb   Total: $12.50", "Tel. 2222-0000"):
        draw.text((round(40 * scale), y), line, fill=(30, 30, 30), font=text)
        y += round(52 * scale)
    if code_line:
        draw.text((round(40 * scale), y + round(20 * scale)), code_line, fill="black", font=mono)
    y += round(114 * scale)
    for i in range(30):  # a barcode
        x = round((40 + i * 12) * scale)
        draw.rectangle((x, y, x + round((6 if i % 3 == 0 else 3) * scale), y + round(60 * scale)), fill="black")
    draw.text((round(40 * scale), y + round(90 * scale)), "Gracias por su preferencia", fill="black", font=text)
    if rotate:
        img = img.rotate(rotate, expand=True, fillcolor=PAPER, resample=Image.Resampling.BICUBIC)
    out = io.BytesIO()
    if fmt == "JPEG":
        img.save(out, "JPEG", quality=quality)
    else:
        img.save(out, fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def engine() -> ocr.OcrEngine:
    found = ocr.find_engine(timeout_s=30)
    if found is None:
        pytest.skip("tesseract-ocr is not installed here (make test installs it: scripts/devservices.py)")
    return found


# --- what OCR gets wrong, repaired before the bot's code reader -------------------------------------------------


@pytest.mark.parametrize(("read", "codes"), [
    ("GUIA: SV20260106012345", [CODE]),
    ("GUIA: 5V20260106012345", [CODE]),  # an S read as a 5
    ("GUIA: $V 2026 0106 0123 45", [CODE]),  # an S read as a $
    ("GUIA: 5V¥20260106012345", [CODE]),  # a stray symbol between SV and the digits
    ("Guia sv-2026-0106-012345\nTotal $12.50", [CODE]),
    ("GUIA: SV2O26O1O6O12345", [CODE]),  # O for 0, as people type it too
    ("Tel. 2222-0000\nTotal: $12.50\n05/01/2026", []),
    ("15V 20260106012345", []),  # "15V" is a voltage, not the start of a code
])
def test_codes_in_ocr_text(read: str, codes: list[str]) -> None:
    assert photo_codes.codes_in_text(read) == codes


# --- the engine on drawn photos ------------------------------------------------------------------------------


@pytest.mark.parametrize("photo", [
    pytest.param({}, id="clean"),
    pytest.param({"rotate": 3}, id="turned-3-degrees"),
    pytest.param({"rotate": -5}, id="turned-minus-5-degrees"),
    pytest.param({"fmt": "JPEG", "quality": 40}, id="jpeg-quality-40"),
    pytest.param({"width": 400, "size": 17}, id="small-photo"),
    pytest.param({"width": 3000, "size": 128}, id="12-megapixel-photo"),
    pytest.param({"code_line": "GUIA: SV 2026 0106 0123 45"}, id="spaced-groups"),
    pytest.param({"code_line": "Guía: SV-2026-0106-012345"}, id="dashed-groups"),
])
def test_the_code_on_a_receipt_photo_is_read(engine: ocr.OcrEngine, photo: dict[str, object]) -> None:
    assert photo_codes.codes_in_photo(engine, receipt_photo(**photo)) == [CODE]  # type: ignore[arg-type]


def test_a_photo_turned_by_its_exif_orientation_is_read_upright(engine: ocr.OcrEngine) -> None:
    """Phones store the photo sideways and say so in EXIF (orientation 6: turn 90° clockwise to view it)."""
    upright = Image.open(io.BytesIO(receipt_photo()))
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    sideways.save(out, "JPEG", quality=90, exif=exif)
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(out.getvalue()))).size == upright.size
    assert photo_codes.codes_in_photo(engine, out.getvalue()) == [CODE]


def test_a_receipt_without_a_code_gives_none(engine: ocr.OcrEngine) -> None:
    assert photo_codes.codes_in_photo(engine, receipt_photo(None)) == []


def test_what_is_not_a_readable_photo_gives_no_code_and_no_error(engine: ocr.OcrEngine) -> None:
    assert photo_codes.codes_in_photo(engine, b"%PDF-1.7 not an image") == []
    assert photo_codes.codes_in_photo(engine, receipt_photo()[:200]) == []  # cut off mid-file
    huge = io.BytesIO()
    Image.new("L", (8000, 6000), 255).save(huge, "PNG")  # 48 megapixels: refused before it is decoded
    assert ocr.prepare(huge.getvalue()) is None


def test_without_tesseract_there_is_no_code_and_no_error() -> None:
    assert ocr.find_engine(timeout_s=5, binary="tesseract-not-installed-here") is None
    assert photo_codes.codes_in_photo(None, receipt_photo()) == []
    broken = ocr.OcrEngine(binary="false", languages="spa", timeout_s=5)  # runs and fails
    assert ocr.read_text(broken, b"") is None


def test_a_photo_read_too_slowly_gives_no_code_and_no_error(engine: ocr.OcrEngine) -> None:
    hurried = ocr.OcrEngine(engine.binary, engine.languages, timeout_s=0.01)
    assert photo_codes.codes_in_photo(hurried, receipt_photo(width=3000, size=128)) == []
