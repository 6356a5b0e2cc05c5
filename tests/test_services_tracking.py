"""Tracking against the sandbox core over real HTTP: information levels, not found, core down, lists.

Asserts the text the customer reads. The demo data (sandbox_core/data/core_demo.json) has
SV20260105007834 (Pedro Ramírez → María López, ARRIVED in Santa Ana, $35.00 to collect) and
SV20260103008921 (Juan Pérez → Carmen Díaz, DELIVERED, $40.00 refund available).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
import redis

from channels.outbound import Buttons, ChoiceList, OutboundMessage, Text, preview_text
from core_api_client import CoreClient
from sandbox_core import BackgroundServer, create_sandbox_app
from services import ServiceContext, lookup, tracking
from services.normalize import fold
from tests.services_support import SV, closed_port, make_ctx

TUESDAY_1945 = datetime(2026, 1, 6, 19, 45, tzinfo=SV)
STRANGER = "+50379990001"
MARIA = "+50370000002"  # recipient of SV20260105007834 and SV20260106012345
JUAN = "+50370000001"  # sender of SV20260103008921, SV20260106012345 and others
PRIVATE_OF_7834 = ["$35", "María", "Maria", "López", "Lopez", "Pedro", "Ramírez", "Ramirez"]


def read(replies: list[OutboundMessage]) -> str:
    """Everything the customer reads: bodies, button and row titles."""
    return "\n".join(preview_text(m) for m in replies)


def assert_within_meta_limits(replies: list[OutboundMessage]) -> None:
    for message in replies:
        if isinstance(message, Buttons):
            assert 1 <= len(message.buttons) <= 3
            assert all(len(b.title) <= 20 for b in message.buttons)
        if isinstance(message, ChoiceList):
            assert 1 <= len(message.rows) <= 10 and len(message.button_label) <= 20
            assert all(len(r.title) <= 24 and len(r.description or "") <= 72 for r in message.rows)
        body = getattr(message, "body", "")
        assert "**" not in body and not body.lstrip().startswith("#")
        assert emoji_count(body) <= 3, body


def emoji_count(text: str) -> int:
    return sum(1 for c in text if unicodedata.category(c) == "So")


@pytest.fixture
def ctx(core: CoreClient, redis_conn: redis.Redis) -> ServiceContext:
    return make_ctx(core, redis_conn)


@pytest.mark.parametrize("writer", [STRANGER, None], ids=["other-phone", "username-only"])
def test_a_stranger_sees_status_cities_and_history_but_nothing_private(ctx: ServiceContext, writer: str | None) -> None:
    answer = tracking.track(ctx, "SV20260105007834", writer)
    text = read(answer.replies)
    assert answer.outcome == "found" and answer.full_access is False
    assert answer.package is not None and answer.package.tracking_code == "SV20260105007834"
    for expected in ("SV20260105007834", "Listo para retirar en Santa Ana", "(06/01 10:00am)",
                     "San Miguel (San Miguel - Punto Principal)", "Santa Ana (Santa Ana - Punto Principal)",
                     "05/01 8:30am · Recibido en San Miguel", "teléfono registrado"):
        assert expected in text
    for private in PRIVATE_OF_7834:
        assert private not in text and fold(private) not in fold(text)
    assert "Calle Libertad" not in text  # full addresses only for the package's own people
    assert not any(isinstance(m, Buttons) for m in answer.replies)
    assert_within_meta_limits(answer.replies)


def test_the_recipient_sees_amount_pickup_point_hours_and_the_pin_offer(ctx: ServiceContext) -> None:
    answer = tracking.track(ctx, "SV20260105007834", MARIA)
    text = read(answer.replies)
    assert answer.outcome == "found" and answer.full_access is True
    for expected in ("*Remitente:* Pedro Ramírez", "*Destinatario:* María López", "*Monto a pagar:* $35.00",
                     "*Retíralo en:* Santa Ana - Punto Principal", "Calle Libertad esq. 10ª Av. Norte",
                     "Lunes a viernes: 8:00am - 6:00pm", "Ahora (10:30am) está *abierto*, hasta las 6:00pm.",
                     "DUI", "¿Quieres la ubicación en el mapa?"):
        assert expected in text
    assert "teléfono registrado" not in text
    assert text.count("$35.00") == 1
    pin = answer.replies[-1]
    assert isinstance(pin, Buttons)
    assert [(b.id, b.title) for b in pin.buttons] == [("pin:santa_ana", "📍 Ver ubicación"), ("pin_no", "No, gracias")]
    assert_within_meta_limits(answer.replies)


def test_the_recipient_is_recognised_with_a_local_number_format(ctx: ServiceContext) -> None:
    assert tracking.track(ctx, "SV20260105007834", "7000-0002").full_access is True


def test_the_sender_of_a_delivered_package_sees_the_refund_where_and_the_dui_requirement(ctx: ServiceContext) -> None:
    answer = tracking.track(ctx, "SV20260103008921", JUAN)
    text = read(answer.replies)
    assert answer.full_access is True
    assert_within_meta_limits(answer.replies)
    for expected in ("Entregado en La Unión (05/01 4:30pm)", "¡Tienes un reembolso disponible!", "Monto: *$40.00*",
                     "Retíralo en: *San Salvador - Punto Centro*", "Calle Arce #450",
                     "*Requisito:* Presentar tu DUI como remitente"):
        assert expected in text
    assert isinstance(answer.replies[-1], Buttons)
    assert answer.replies[-1].buttons[0].id == "pin:san_salvador_centro"


def test_a_stranger_never_sees_the_refund(ctx: ServiceContext) -> None:
    text = read(tracking.track(ctx, "SV20260103008921", STRANGER).replies)
    assert "Entregado en La Unión" in text
    for private in ("$40", "reembolso disponible", "Juan", "Carmen", "DUI"):
        assert private not in text


def test_a_package_on_its_way_shows_the_core_eta(ctx: ServiceContext) -> None:
    text = read(tracking.track(ctx, " sv2026-0106-012345 ", None).replies)
    assert "*Estado actual:* En tránsito hacia Santa Ana (06/01 2:00pm)" in text
    assert "*Llegada estimada:* hoy, 5:00pm" in text


def test_not_found_offers_retry_search_and_a_person_with_the_code_format(ctx: ServiceContext) -> None:
    answer = tracking.track(ctx, "SV20269999999999", JUAN)
    assert answer.outcome == "not_found" and answer.package is None and not answer.full_access
    [message] = answer.replies
    assert isinstance(message, Buttons)
    assert [b.id for b in message.buttons] == ["nf_retry", "nf_search", "nf_human"]
    assert "No encontré ningún paquete con el código *SV20269999999999*" in message.body
    assert "SV20260106012345" in message.body
    assert_within_meta_limits(answer.replies)


def test_core_down_says_try_again_or_talk_to_a_person(redis_conn: redis.Redis) -> None:
    with CoreClient(f"http://127.0.0.1:{closed_port()}", timeout_s=1, retry_delay_s=0.01) as down:
        answer = tracking.track(make_ctx(down, redis_conn), "SV20260106012345", JUAN)
    assert answer.outcome == "core_unavailable" and answer.package is None
    [message] = answer.replies
    assert isinstance(message, Text)
    assert "problemas técnicos" in message.body and "intenta de nuevo en unos minutos" in message.body
    assert "asesor" in message.body


def test_tracking_is_never_cached(redis_conn: redis.Redis) -> None:
    server = BackgroundServer(create_sandbox_app()).start()
    with CoreClient(server.url, timeout_s=2, retry_delay_s=0.01) as core:
        ctx = make_ctx(core, redis_conn)
        assert tracking.track(ctx, "SV20260106012345", JUAN).outcome == "found"
        assert not [k for k in redis_conn.keys("*") if b"SV2026" in k or b"track" in k or b"package" in k]
        server.stop()
        assert tracking.track(ctx, "SV20260106012345", JUAN).outcome == "core_unavailable"


# -- searching without a code (services.lookup) ----------------------------------------------------


def test_the_senders_own_packages_become_a_numbered_list_with_names(ctx: ServiceContext) -> None:
    own = lookup.own_packages(ctx, JUAN)
    assert own.outcome == "listed" and len(own.packages) == 5
    assert all(p.sender.phone == JUAN for p in own.packages)
    [message] = own.replies
    assert isinstance(message, ChoiceList)
    assert [r.id for r in message.rows] == [f"pkg:{p.tracking_code}" for p in own.packages]
    assert own.codes == [p.tracking_code for p in own.packages]
    assert message.rows[0].title == "SV20260106012345"
    assert message.rows[0].description == "Santa Ana · En tránsito"
    assert "Encontré 5 paquetes:" in message.body
    assert "1. *SV20260106012345*: Santa Ana · En tránsito (06/01 2:00pm)" in message.body
    assert "Para: María López" in message.body
    assert "Responde con el número (1, 2…)" in message.body
    assert_within_meta_limits([message])


def test_the_recipients_own_packages_name_the_sender(ctx: ServiceContext) -> None:
    own = lookup.own_packages(ctx, "7000-0002")  # the local format of María's number
    assert sorted(own.codes) == ["SV20260105007834", "SV20260106012345"]
    text = read(own.replies)
    assert "De: Pedro Ramírez" in text and "De: Juan Pérez" in text
    assert "SV20260105007823" not in text  # "M. López" is another person with another phone


def test_a_number_that_matches_nothing_finds_nothing(ctx: ServiceContext) -> None:
    own = lookup.own_packages(ctx, STRANGER)
    assert own.outcome == "none" and own.packages == [] and own.codes == []
    assert read(own.replies) == "No encontré paquetes registrados con el número desde el que me escribes 📱"


def test_a_username_only_writer_finds_nothing_without_a_code(ctx: ServiceContext) -> None:
    own = lookup.own_packages(ctx, None)
    assert own.outcome == "no_phone" and own.packages == [] and own.codes == []
    [message] = own.replies
    assert isinstance(message, Buttons)
    assert [(b.id, b.title) for b in message.buttons] == [("nf_retry", "Tengo el código"),
                                                          ("nf_human", "Hablar con asesor")]
    assert "sin el código" in message.body and "teléfono registrado" in message.body
    named = lookup.confirm_by_name(ctx, None, "María López", "santa_ana")
    assert named.outcome == "no_phone" and "SV2026" not in read(named.replies)
    assert "María" not in read(named.replies) and "Santa Ana" not in read(named.replies)
    assert_within_meta_limits(own.replies)


def test_a_list_never_shows_a_package_of_someone_else(ctx: ServiceContext, core: CoreClient) -> None:
    marias = [p for code in ("SV20260105007834", "SV20260106012345") if (p := core.track(code)) is not None]
    assert read(tracking.package_choices(ctx, marias, STRANGER)) == "No encontré paquetes con esos datos."
    assert read(tracking.package_choices(ctx, marias, None)) == "No encontré paquetes con esos datos."
    text = read(tracking.package_choices(ctx, marias, JUAN))  # Juan sent SV20260106012345 only
    assert text.startswith("Encontré 1 paquete:\n") and "SV20260106012345" in text and "Para: María López" in text
    assert "SV20260105007834" not in text and "Pedro" not in text


def test_a_full_name_and_the_point_only_confirm_a_package_waits_there(ctx: ServiceContext) -> None:
    answer = lookup.confirm_by_name(ctx, STRANGER, "maria lopez", "santa_ana")
    assert answer.outcome == "exists"
    [message] = answer.replies
    assert isinstance(message, Buttons)
    assert [b.id for b in message.buttons] == ["nf_retry", "nf_human"]
    text = read(answer.replies)
    for expected in ("Sí hay un paquete a nombre de *maria lopez*", "*Santa Ana - Punto Principal*",
                     "pídele el código de rastreo a quien te lo envió", "teléfono registrado", "Hablar con asesor"):
        assert expected in text
    for hidden in ("SV2026", "María", "López", "Pedro", "$35", "Listo", "tránsito", "Recibido", "06/01", "05/01"):
        assert hidden not in text, hidden
    assert_within_meta_limits(answer.replies)


@pytest.mark.parametrize("typed", ["María", "López", "M. López", "maría 7000-0002"])
def test_a_first_name_or_a_surname_alone_confirms_nothing(ctx: ServiceContext, typed: str) -> None:
    answer = lookup.confirm_by_name(ctx, STRANGER, typed, "santa_ana")
    assert answer.outcome == "needs_full_name"
    text = read(answer.replies)
    assert "*nombre y apellido*" in text and "SV2026" not in text and "Santa Ana" not in text


@pytest.mark.parametrize(("typed", "point"), [
    ("María López", "la_union"),  # her packages go to Santa Ana
    ("Juan Pérez", "santa_ana"),  # a sender's name: only the one who collects counts
    ("Carmen Díaz", "la_union"),  # already delivered: nothing waits to be collected
    ("Pedro López", "santa_ana"),  # one word right, one wrong
])
def test_a_name_that_is_not_a_waiting_recipient_there_finds_nothing(ctx: ServiceContext, typed: str,
                                                                    point: str) -> None:
    answer = lookup.confirm_by_name(ctx, STRANGER, typed, point)
    assert answer.outcome == "none"
    [message] = answer.replies
    assert isinstance(message, Buttons) and [b.id for b in message.buttons] == ["nf_name", "nf_human", "nf_retry"]
    assert "No encontré paquetes por retirar a nombre de" in message.body and "SV2026" not in message.body


def test_a_name_without_a_point_confirms_nothing(ctx: ServiceContext) -> None:
    for point in (None, "", "atlantida"):
        answer = lookup.confirm_by_name(ctx, STRANGER, "María López", point)
        assert answer.outcome == "needs_point"
        assert "a qué punto va" in read(answer.replies) and "SV2026" not in read(answer.replies)


def test_only_the_lookup_service_asks_the_core_to_search() -> None:
    """One enforcement point: the rules, the LLM tools, the console and the workers all go through lookup."""
    root = Path(__file__).resolve().parent.parent
    packages = ("chatbot", "console", "web", "worker", "notifications", "services", "handoff", "llm")
    callers = sorted(str(path.relative_to(root)) for package in packages
                     for path in (root / package).rglob("*.py") if "core.search(" in path.read_text(encoding="utf-8"))
    assert callers == ["services/lookup.py"]


def test_a_typed_phone_is_answered_honestly_and_is_only_the_writers_own_when_it_is(ctx: ServiceContext) -> None:
    text = read(lookup.typed_phone_replies(STRANGER))
    assert "solo puedo mostrarte los paquetes del número desde el que me escribes" in text
    assert "sin un número de teléfono visible" in read(lookup.typed_phone_replies(None))
    assert lookup.is_writers_phone("7000-0002", MARIA) and lookup.is_writers_phone("+503 7000 0002", MARIA)
    assert not lookup.is_writers_phone("7000-0002", STRANGER) and not lookup.is_writers_phone("7000-0002", None)


def test_pickup_answer_after_hours_gives_tomorrow_and_says_closed(core: CoreClient, redis_conn: redis.Redis) -> None:
    ctx = make_ctx(core, redis_conn, TUESDAY_1945)
    package = core.track("SV20260105007834")
    assert package is not None
    text = read(tracking.pickup_answer(ctx, package, MARIA))
    for expected in ("*Santa Ana - Punto Principal*", "Hoy (martes) atendemos de 8:00am a 6:00pm.",
                     "Mañana (miércoles) atendemos de 8:00am a 6:00pm.",
                     "Ahora (7:45pm) está *cerrado*. Abre mañana (miércoles) a las 8:00am.", "$35.00"):
        assert expected in text
    assert "$35" not in read(tracking.pickup_answer(ctx, package, STRANGER))


def test_pickup_answer_for_a_package_still_on_its_way(ctx: ServiceContext, core: CoreClient) -> None:
    package = core.track("SV20260106012345")
    assert package is not None
    replies = tracking.pickup_answer(ctx, package, MARIA)
    assert_within_meta_limits(replies)
    text = read(replies)
    assert "todavía no está listo para retirar. Estado: En tránsito hacia Santa Ana (06/01 2:00pm)." in text


def test_eta_answer_has_one_line_per_package(ctx: ServiceContext, core: CoreClient) -> None:
    packages = [core.track("SV20260106012345"), core.track("SV20260106012890")]
    [message] = tracking.eta_answer(ctx, [p for p in packages if p is not None], JUAN)
    assert isinstance(message, Text)
    lines = message.body.splitlines()
    assert lines[1] == "• *SV20260106012345* → Santa Ana: En tránsito (06/01 2:00pm) · llegada estimada hoy, 5:00pm"
    assert lines[2].startswith("• *SV20260106012890* → San Miguel: Recibido en origen (06/01 9:00am)")
    assert "el jueves 08/01, 5:00pm" in lines[2]
