"""Photo codes benchmark: the CPU one customer photo costs the worker to read its tracking code (issue 17).

    python -m bench.photo_codes [--photos 8] [--json]

Photos like customers send them: a receipt of the demo company (tests/test_photo_codes.py draws it: "GUIA: SV…"
among the usual lines, a barcode, a total), turned by up to 4 degrees, pasted on a noisy table, slightly
blurred and saved as a JPEG at quality 80; WhatsApp's usual 1600 x 1200 and a 12-megapixel original (4000 x
3000, a document sent "as a file"); with a code, and without one (then Tesseract reads the photo twice, as a
block of text and as sparse text: the dearer case). The CPU is the process's and Tesseract's together
(`os.times`, children included), per photo: what `chatbot.photo_codes.codes_in_photo` costs inside the
download's job.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from typing import Any

from PIL import Image, ImageFilter

from chatbot import photo_codes
from services import ocr
from tests.test_photo_codes import CODE, receipt_photo

SIZES = ((1600, True), (1600, False), (4000, True))


def customer_photo(width: int, with_code: bool, rng: random.Random) -> bytes:
    """A receipt photographed on a table: a JPEG of `width` x 3/4 `width` pixels."""
    paper = width // 2
    receipt = Image.open(io.BytesIO(receipt_photo(f"GUIA: {CODE}" if with_code else None, width=paper,
                                                  size=round(34 * paper / 800), rotate=rng.uniform(-4, 4))))
    table = Image.blend(Image.effect_noise((width, width * 3 // 4), 25).convert("RGB"),
                        Image.new("RGB", (width, width * 3 // 4), (120, 95, 70)), 0.6)
    receipt = receipt.resize((paper, round(paper * receipt.height / receipt.width)))
    table.paste(receipt.crop((0, 0, receipt.width, min(receipt.height, table.height - 10))), (width // 4, 5))
    out = io.BytesIO()
    table.filter(ImageFilter.GaussianBlur(0.6)).save(out, "JPEG", quality=80)
    return out.getvalue()


def measure(engine: ocr.OcrEngine, photos: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    results = []
    for width, with_code in SIZES:
        cpu, wall, read = [], [], 0
        for _ in range(photos):
            data = customer_photo(width, with_code, rng)
            before, started = os.times(), time.perf_counter()
            codes = photo_codes.codes_in_photo(engine, data)
            after = os.times()
            wall.append(time.perf_counter() - started)
            cpu.append(sum(getattr(after, f) - getattr(before, f)
                           for f in ("user", "system", "children_user", "children_system")))
            read += codes == ([CODE] if with_code else [])
        results.append({"photo": f"{width}x{width * 3 // 4}", "code": with_code, "photos": photos, "right": read,
                        "cpu_mean_s": round(statistics.mean(cpu), 3), "cpu_max_s": round(max(cpu), 3),
                        "wall_mean_s": round(statistics.mean(wall), 3)})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--photos", type=int, default=8, help="photos of each kind")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    engine = ocr.find_engine(timeout_s=60)
    if engine is None:
        print("tesseract-ocr is not installed: python -m scripts.devservices --ocr", file=sys.stderr)
        return 1
    results = measure(engine, args.photos)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"Tesseract {engine.languages}, one thread per photo")
    for r in results:
        print(f"{r['photo']:>9} {'with a code' if r['code'] else 'no code':<11} right {r['right']}/{r['photos']}"
              f"  CPU mean {r['cpu_mean_s']:.2f} s, max {r['cpu_max_s']:.2f} s  wall mean {r['wall_mean_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
