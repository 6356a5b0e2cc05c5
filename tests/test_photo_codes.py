"""A photo of a receipt or a label with a tracking code: the code is read (Tesseract) and confirmed with the customer.

The photos are drawn here with Pillow (DejaVu fonts, fonts-dejavu-core; PIL's own font scaled up without it):
a receipt of the demo company with "GUIA: SV…" among the usual lines, a barcode and a total. Tesseract itself
is installed by `make test` (scripts/devservices.py); the tests that need it are skipped only where it is absent.

The pipeline tests post Meta's signed image webhook (fixtures/meta_image.json's shape) to the real app; RQ burst
workers answer it, download the photo from the loopback Graph API fake into the media store, read it, and the
code re-enters the customer's inbox: what the customer sees is read back from the messages sent.
"""

from __future__ import annotations

import copy
import io
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageDraw, ImageFont, ImageOps
from psycopg_pool import ConnectionPool

from chatbot import photo_codes
from config import Settings
from runtime.resources import build_runtime
from services import ocr
from storage import media
from tests.conftest import load_fixture
from tests.fakes.graph_api import DEFAULT_TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs, served
from web.app import create_app
from worker import media_followup, photo_followup

CODE = "SV20260106012345"  # a package of the sandbox core's demo data (in transit)
OTHER_CODE = "SV20260105007834"  # another one (sandbox_core/data/core_demo.json)
UNKNOWN_CODE = "SV20269999999999"  # a code the core does not know
CUSTOMER = "50370000019"  # neither sender nor recipient of those packages
SENT_AT = 1767715200  # 2026-01-06 10:00 in El Salvador
ASKED = f"En tu foto leí el código *{CODE}*, ¿es ese? 🤔"
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
    ("GUIA: SV2026010601234S", [CODE]),  # two readings (S for 5, or a letter after 13 digits): the first one
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


# --- through the pipeline: webhook -> download -> OCR -> "¿es ese?" -> "Sí" -> the package ----------------------


@pytest.fixture
def meta(base_env: dict[str, str], core_url: str, graph: FakeGraphAPI, engine: ocr.OcrEngine) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "WHATSAPP_PROVIDER": "meta",
                              "META_ACCESS_TOKEN": GRAPH_TOKEN, "META_GRAPH_BASE_URL": graph.url,
                              "SIMULATOR_ENABLED": "false"})


@pytest.fixture
def client(meta: Settings) -> Iterator[FlaskClient]:
    app = create_app(meta)
    with app.test_client() as test_client:
        yield test_client
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


def _post(client: FlaskClient, message: dict[str, Any]) -> str:
    payload = copy.deepcopy(load_fixture("meta_image.json"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = "106540352242922"
    value["contacts"][0]["wa_id"] = CUSTOMER
    value["messages"] = [{"from": CUSTOMER, "id": f"wamid.PHOTO{uuid.uuid4().hex}", **message}]
    assert post_meta(client, payload).status_code == 200
    return str(message.get("id") or value["messages"][0]["id"])


def send_photo(client: FlaskClient, graph: FakeGraphAPI, photo: bytes, *, at: int = SENT_AT,
               caption: str | None = None) -> str:
    """The customer sends a photo (a JPEG, as WhatsApp sends them): Meta's webhook, and the file on the Graph fake."""
    media_id = str(uuid.uuid4().int)[:16]
    graph.media.add(media_id, photo, "image/jpeg")
    image: dict[str, Any] = {"mime_type": "image/jpeg", "id": media_id}
    if caption:
        image["caption"] = caption
    return _post(client, {"timestamp": str(at), "type": "image", "image": image})


def tap(client: FlaskClient, button_id: str, title: str, *, at: int = SENT_AT + 30) -> None:
    _post(client, {"timestamp": str(at), "type": "interactive",
                   "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}})


def said(pool: ConnectionPool) -> list[dict[str, Any]]:
    """What the customer was sent, in order: each message's text and its buttons' (id, title)."""
    sent = rows(pool, "SELECT body, payload FROM messages WHERE direction = 'out' ORDER BY id")
    return [{"body": r["payload"].get("body") or r["body"],
             "buttons": [(b["id"], b["title"]) for b in r["payload"].get("buttons") or []]} for r in sent]


def jpeg(code_line: str | None = f"GUIA: {CODE}") -> bytes:
    return receipt_photo(code_line, fmt="JPEG", quality=80)


def test_a_receipt_photo_is_read_confirmed_and_tracked(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                                       db_pool: ConnectionPool) -> None:
    wamid = send_photo(client, graph, jpeg())
    run_jobs(meta)

    first, question = said(db_pool)  # the photo's own reply at once, then the question about the code read
    assert "Recibí tu imagen" in first["body"]
    assert question == {"body": ASKED, "buttons": [(f"pkg:{CODE}", "Sí"), ("code_no", "No")]}
    [row] = rows(db_pool, "SELECT status, ocr_code FROM media")
    assert (row["status"], row["ocr_code"]) == ("stored", CODE)
    [entered] = rows(db_pool, "SELECT kind, body FROM messages WHERE provider_message_id = %s", (f"{wamid}:photo",))
    assert (entered["kind"], entered["body"]) == ("photo_text", CODE)
    assert any(ASKED in str(m.get("interactive", "")) for m in graph.messages_to(f"+{CUSTOMER}"))

    tap(client, f"pkg:{CODE}", "Sí")
    run_jobs(meta)
    answer = said(db_pool)[-1]["body"]
    assert CODE in answer and "tránsito" in answer.lower()


def test_no_is_asked_to_type_the_code(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                      db_pool: ConnectionPool) -> None:
    send_photo(client, graph, jpeg())
    run_jobs(meta)
    tap(client, "code_no", "No")
    run_jobs(meta)
    assert "escríbeme el código otra vez" in said(db_pool)[-1]["body"]


def test_an_album_of_receipts_gets_one_question(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                               db_pool: ConnectionPool) -> None:
    send_photo(client, graph, jpeg())
    send_photo(client, graph, jpeg(f"GUIA: {OTHER_CODE}"), at=SENT_AT + 2)
    run_jobs(meta)
    questions = [m for m in said(db_pool) if "En tu foto leí" in m["body"]]
    assert len(questions) == 1 and len(said(db_pool)) == 2  # one reply to the album, one question
    codes = {r["ocr_code"] for r in rows(db_pool, "SELECT ocr_code FROM media")}
    assert codes == {CODE, OTHER_CODE}  # each photo read: both codes are on their rows for an agent


def test_photos_a_minute_apart_get_a_question_each(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                                   db_pool: ConnectionPool) -> None:
    send_photo(client, graph, jpeg())
    run_jobs(meta)
    send_photo(client, graph, jpeg(f"GUIA: {OTHER_CODE}"), at=SENT_AT + 60)
    run_jobs(meta)
    questions = [m["body"] for m in said(db_pool) if "En tu foto leí" in m["body"]]
    assert questions == [ASKED, ASKED.replace(CODE, OTHER_CODE)]


@pytest.mark.parametrize("code_line", [None, f"GUIA: {UNKNOWN_CODE}"], ids=["no-code", "code-the-core-does-not-know"])
def test_nothing_is_asked_without_a_known_code(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                               db_pool: ConnectionPool, code_line: str | None) -> None:
    send_photo(client, graph, jpeg(code_line))
    run_jobs(meta)
    [reply] = said(db_pool)
    assert "Recibí tu imagen" in reply["body"]


def test_a_caption_with_the_code_is_tracked_and_not_asked_again(client: FlaskClient, meta: Settings,
                                                                graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    send_photo(client, graph, jpeg(), caption=f"este es mi comprobante {CODE}")
    run_jobs(meta)
    [answer] = said(db_pool)
    assert CODE in answer["body"] and "tránsito" in answer["body"].lower()


def test_the_question_is_asked_once_when_the_follow_up_runs_again(client: FlaskClient, meta: Settings,
                                                                  graph: FakeGraphAPI,
                                                                  db_pool: ConnectionPool) -> None:
    send_photo(client, graph, jpeg())
    run_jobs(meta)
    [row] = rows(db_pool, "SELECT id, tenant_id FROM media")
    rt = build_runtime(meta, pool_size=1)
    try:
        with db_pool.connection() as conn:
            stored = media.get(conn, row["id"], row["tenant_id"])
        assert stored is not None
        media_followup.after_stored(rt, stored)
    finally:
        rt.close()
    run_jobs(meta)
    assert len([m for m in said(db_pool) if "En tu foto leí" in m["body"]]) == 1


def test_no_question_while_a_person_has_the_chat(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                                db_pool: ConnectionPool) -> None:
    _post(client, {"timestamp": str(SENT_AT - 60), "type": "text", "text": {"body": "quiero hablar con una persona"}})
    run_jobs(meta)
    assert rows(db_pool, "SELECT status FROM conversations")[0]["status"] == "escalated"
    send_photo(client, graph, jpeg())
    run_jobs(meta)
    assert not [m for m in said(db_pool) if "En tu foto leí" in m["body"]]
    assert rows(db_pool, "SELECT ocr_code FROM media")[0]["ocr_code"] == CODE  # the agent sees the code read


def test_photo_ocr_turned_off_reads_nothing(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                           db_pool: ConnectionPool) -> None:
    send_photo(client, graph, jpeg())
    run_jobs(meta.with_overrides(photo_ocr=False))
    [reply] = said(db_pool)
    assert "Recibí tu imagen" in reply["body"]
    assert rows(db_pool, "SELECT status, ocr_code FROM media")[0] == {"status": "stored", "ocr_code": None}


def test_the_worker_says_once_when_tesseract_is_missing(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # a machine without tesseract-ocr (the environment, not our code)
    missing = settings.with_overrides(photo_ocr_timeout_s=17.5)  # an engine not looked up yet in this process
    with caplog.at_level(logging.WARNING, logger="worker.photo_followup"):
        photo_followup.announce(missing)
        photo_followup.announce(missing.with_overrides(photo_ocr=False))  # off on purpose: nothing to say
    assert [r.getMessage() for r in caplog.records].count(
        "photo OCR is off: tesseract-ocr (with tesseract-ocr-spa) is not installed; "
        "make run / make test install it (scripts/devservices.py)") == 1
    assert photo_followup.engine(missing) is None


def test_a_receipt_photo_from_the_simulator_gets_the_question(base_env: dict[str, str], core_url: str,
                                                             engine: ocr.OcrEngine, db_pool: ConnectionPool) -> None:
    """`make run`'s path: the simulator attaches the photo, the worker downloads it from the simulator's pretend
    media host (local transport), reads it, and the customer's phone shows the question with its buttons."""
    settings = Settings.from_env({**base_env, "CORE_API_URL": core_url})
    phone = f"+{CUSTOMER}"
    with served(settings) as (_app, url), httpx.Client(base_url=url, timeout=20) as api:
        sent = api.post("/simulator/api/media", data={"from": phone},
                        files=[("file", ("recibo.jpg", jpeg(), "image/jpeg"))])
        assert sent.status_code == 200, sent.text
        run_jobs(settings.with_overrides(public_base_url=url))
        shown = api.get("/simulator/api/messages", params={"phone": phone}).json()["messages"]
    question = [m for m in shown if m["direction"] == "out" and ASKED in str(m["body"])]
    assert len(question) == 1
    assert [b["title"] for b in question[0]["payload"]["buttons"]] == ["Sí", "No"]
