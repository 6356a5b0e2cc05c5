"""Hours, locations, prices and delivery times from the sandbox core, and the Redis cache in front of it."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from channels.outbound import Buttons, ChoiceList, Location, OutboundMessage, Text, preview_text
from core_api_client import CoreClient, CoreUnavailable
from sandbox_core import BackgroundServer, create_sandbox_app
from services import ServiceContext, business, catalog
from tests.services_support import SV, TUESDAY_1030, closed_port, make_ctx

TUESDAY_1945 = datetime(2026, 1, 6, 19, 45, tzinfo=SV)
SATURDAY_1230 = datetime(2026, 1, 10, 12, 30, tzinfo=SV)
SUNDAY_1100 = datetime(2026, 1, 11, 11, 0, tzinfo=SV)
SUPPORT_HOURS = {"mon-fri": ("08:00", "18:00"), "sat": ("08:00", "13:00"), "sun": None}


def read(replies: list[OutboundMessage]) -> str:
    return "\n".join(preview_text(m) for m in replies)


def at_most_three_emojis(replies: list[OutboundMessage]) -> bool:
    bodies = [getattr(m, "body", "") for m in replies]
    return all(sum(1 for c in body if unicodedata.category(c) == "So") <= 3 for body in bodies)


@pytest.fixture
def ctx(core: CoreClient, redis_conn: redis.Redis) -> ServiceContext:
    return make_ctx(core, redis_conn)


# -- hours ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("now", "day", "expected"),
    [
        (TUESDAY_1030, None, ["Ahora (10:30am) está *abierto*, hasta las 6:00pm."]),
        (TUESDAY_1945, None, ["Ahora (7:45pm) está *cerrado*. Abre mañana (miércoles) a las 8:00am."]),
        (TUESDAY_1945, "tomorrow", ["Mañana (miércoles) atendemos de 8:00am a 6:00pm."]),
        (TUESDAY_1030, "today", ["Hoy (martes) atendemos de 8:00am a 6:00pm.", "está *abierto*"]),
        (TUESDAY_1030, "sunday", ["El domingo está cerrado."]),
        (TUESDAY_1030, "sábado", ["El sábado atendemos de 8:00am a 1:00pm."]),
        (SUNDAY_1100, None, ["Ahora (11:00am) está *cerrado*. Abre mañana (lunes) a las 8:00am."]),
        (SUNDAY_1100, "hoy", ["Hoy (domingo) está cerrado."]),
        (SATURDAY_1230, "mañana", ["Mañana (domingo) está cerrado."]),
    ],
)
def test_hours_of_a_point_at_the_moment_of_the_message(
    core: CoreClient, redis_conn: redis.Redis, now: datetime, day: str | None, expected: list[str]
) -> None:
    [message] = business.hours_answer(make_ctx(core, redis_conn, now), "san_salvador_centro", day)
    assert isinstance(message, Buttons)
    for text in ["*San Salvador - Punto Centro*", "Calle Arce #450", "Lunes a viernes: 8:00am - 6:00pm",
                 "Sábado: 8:00am - 1:00pm", "Domingo: cerrado", *expected]:
        assert text in message.body
    assert [b.id for b in message.buttons] == ["pin:san_salvador_centro", "pin_no"]
    assert at_most_three_emojis([message])


def test_a_point_that_closes_earlier_on_saturday(core: CoreClient, redis_conn: redis.Redis) -> None:
    [message] = business.hours_answer(make_ctx(core, redis_conn, SATURDAY_1230), "la_union", None)
    assert "Ahora (12:30pm) está *cerrado*. Abre el lunes 12/01 a las 8:00am." in read([message])


def test_hours_without_a_point_ask_which_one(ctx: ServiceContext) -> None:
    [message] = business.hours_answer(ctx, None, "tomorrow")
    assert isinstance(message, ChoiceList)
    assert message.body.startswith("¿De cuál punto necesitas el horario?")
    assert "3. *Santa Ana - Punto Principal*" in message.body
    assert "Responde con el número o el nombre del punto." in message.body
    assert [r.id for r in message.rows] == [
        "point:san_salvador_centro", "point:soyapango", "point:santa_ana", "point:la_union", "point:san_miguel"]
    assert all(len(r.title) <= 24 and len(r.description or "") <= 72 for r in message.rows)
    assert business.hours_answer(ctx, "no_such_point", None)[0].kind == "list"


@pytest.mark.parametrize(
    ("when", "open_", "next_"),
    [
        (TUESDAY_1030, True, TUESDAY_1030),
        (TUESDAY_1945, False, datetime(2026, 1, 7, 8, 0, tzinfo=SV)),
        (datetime(2026, 1, 6, 6, 0, tzinfo=SV), False, datetime(2026, 1, 6, 8, 0, tzinfo=SV)),
        (datetime(2026, 1, 10, 13, 0, tzinfo=SV), False, datetime(2026, 1, 12, 8, 0, tzinfo=SV)),
        (SUNDAY_1100, False, datetime(2026, 1, 12, 8, 0, tzinfo=SV)),
        (datetime(2026, 1, 6, 16, 30, tzinfo=ZoneInfo("UTC")), True, None),  # 10:30 in El Salvador
    ],
)
def test_is_open_and_next_opening_use_the_company_clock(
    ctx: ServiceContext, when: datetime, open_: bool, next_: datetime | None
) -> None:
    assert business.is_open(ctx, SUPPORT_HOURS, when) is open_
    assert business.next_opening(ctx, SUPPORT_HOURS, when) == (next_ or when)


def test_next_opening_is_none_when_never_open(ctx: ServiceContext) -> None:
    assert business.next_opening(ctx, {"mon-sun": None}, TUESDAY_1030) is None


# -- locations ------------------------------------------------------------------------------------

def test_location_of_a_point_with_the_pin_offer(ctx: ServiceContext) -> None:
    [message] = business.location_answer(ctx, "santa_ana")
    assert isinstance(message, Buttons)
    for text in ("*Santa Ana - Punto Principal*", "Calle Libertad esq. 10ª Av. Norte", "Frente a Banco Agrícola",
                 "📞 2440-5678", "Lunes a viernes: 8:00am - 6:00pm"):
        assert text in message.body
    buttons = [(b.id, b.title) for b in message.buttons]
    assert buttons == [("pin:santa_ana", "📍 Ver ubicación"), ("pin_no", "No, gracias")]
    assert at_most_three_emojis([message])


def test_locations_without_a_point_list_them_all(ctx: ServiceContext) -> None:
    [message] = business.location_answer(ctx, None)
    assert isinstance(message, ChoiceList)
    assert "Tenemos 5 puntos de servicio:" in message.body and "Blvd. del Ejército km 5.5" in message.body
    assert message.rows[1].id == "point:soyapango"


def test_location_pin(ctx: ServiceContext) -> None:
    pin = business.location_pin(ctx, "santa_ana")
    assert isinstance(pin, Location)
    assert (pin.latitude, pin.longitude) == (13.9946, -89.5597)
    assert pin.name == "Santa Ana - Punto Principal" and pin.address and "Calle Libertad" in pin.address
    assert isinstance(business.location_pin(ctx, "atlantis"), Text)


# -- prices and delivery times --------------------------------------------------------------------

def test_price_of_8_lbs_to_santa_ana_is_8_dollars(ctx: ServiceContext) -> None:
    answer = business.pricing_answer(ctx, "santa ana", 8)
    text = read(answer.replies)
    assert answer.missing is None
    for expected in ("Para tu paquete de 8 lbs:", "San Salvador → Santa Ana", "*Costo de envío: $8.00*",
                     "Tiempo de entrega: 1 día hábil", "saliendo desde San Salvador",
                     "Zonas rurales: +$2-5 adicional."):
        assert expected in text
    assert "$18" not in text
    assert at_most_three_emojis(answer.replies)


def test_price_of_3_lbs_within_san_salvador_is_3_dollars(ctx: ServiceContext) -> None:
    answer = business.pricing_answer(ctx, "Soyapango", 3, origin="San Salvador")
    text = read(answer.replies)
    assert "*Costo de envío: $3.00*" in text and "San Salvador → Soyapango" in text
    assert "saliendo desde" not in text  # the origin was given
    assert "Mismo día" in text


def test_the_origin_changes_the_zone(ctx: ServiceContext) -> None:
    assert "$5.00" in read(business.pricing_answer(ctx, "Soyapango", 3, origin="Santa Ana").replies)


def test_missing_weight_shows_the_zone_prices_and_asks(ctx: ServiceContext) -> None:
    answer = business.pricing_answer(ctx, "Santa Ana", None)
    text = read(answer.replies)
    assert answer.missing == "weight"
    assert "¿Cuánto pesa aproximadamente? (en libras)" in text
    assert "• Hasta 5 lbs: $5.00" in text and "• De 5 a 15 lbs: $8.00" in text and "• Más de 30 lbs: $18.00" in text


def test_missing_or_unknown_destination_asks_for_it(ctx: ServiceContext) -> None:
    missing = business.pricing_answer(ctx, None, 8)
    assert missing.missing == "destination" and "¿A qué ciudad o departamento" in read(missing.replies)
    unknown = business.pricing_answer(ctx, "Marte", 8)
    assert unknown.missing == "destination"
    assert "No reconozco *Marte* como destino" in read(unknown.replies)


def test_a_department_without_a_point_is_priced_too(ctx: ServiceContext) -> None:
    assert "*Costo de envío: $18.00*" in read(business.pricing_answer(ctx, "La Libertad", 40).replies)


def test_delivery_times(ctx: ServiceContext) -> None:
    assert read(business.delivery_time_answer(ctx, "San Miguel")) == (
        "⏱️ Tiempo de entrega hacia *San Miguel*: 1-2 días hábiles.")
    everything = read(business.delivery_time_answer(ctx, None)).splitlines()
    assert everything[1].startswith("• Dentro de San Salvador: Mismo día")
    assert everything[-1] == "• Zonas rurales: 2-3 días hábiles"


# -- cache ----------------------------------------------------------------------------------------

def test_points_and_prices_are_served_from_the_cache_once_the_core_is_gone(redis_conn: redis.Redis) -> None:
    with BackgroundServer(create_sandbox_app()) as server, CoreClient(server.url, timeout_s=2,
                                                                     retry_delay_s=0.01) as core:
        ctx = make_ctx(core, redis_conn)
        first_location = read(business.location_answer(ctx, "santa_ana"))
        first_price = read(business.pricing_answer(ctx, "Santa Ana", 8).replies)
        server.stop()
        with pytest.raises(CoreUnavailable):
            core.points()  # the core really is gone
        assert read(business.location_answer(ctx, "santa_ana")) == first_location
        assert read(business.pricing_answer(ctx, "Santa Ana", 8).replies) == first_price
    assert 3500 < redis_conn.ttl(catalog.CACHE_POINTS.format(tenant="demo")) <= catalog.POINTS_TTL_S
    assert 7100 < redis_conn.ttl(catalog.CACHE_PRICING.format(tenant="demo")) <= catalog.PRICING_TTL_S


def test_without_redis_the_core_is_asked_directly(core: CoreClient) -> None:
    broken = redis.Redis(port=closed_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    ctx = make_ctx(core, broken)
    assert "Calle Libertad" in read(business.location_answer(ctx, "santa_ana"))
    assert "$8.00" in read(business.pricing_answer(ctx, "Santa Ana", 8).replies)


def test_without_cache_and_without_core_the_caller_gets_core_unavailable(redis_conn: redis.Redis) -> None:
    with CoreClient(f"http://127.0.0.1:{closed_port()}", timeout_s=1, retry_delay_s=0.01) as down:
        with pytest.raises(CoreUnavailable):
            business.hours_answer(make_ctx(down, redis_conn), "santa_ana", None)
