"""The company's policies and FAQ (faq_data/demo.yaml) and the wording of a hand-over to a person."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from channels.outbound import Buttons, Text
from core_api_client import CoreClient
from sandbox_core import BackgroundServer, create_sandbox_app
from services import ServiceContext, escalation, faq

SV = ZoneInfo("America/El_Salvador")
TUESDAY_1030 = datetime(2026, 1, 6, 10, 30, tzinfo=SV)
SUPPORT_HOURS = {"mon-fri": ["08:00", "18:00"], "sat": ["08:00", "13:00"], "sun": None}  # as JSON gives it
EMERGENCY = "+503 2222-3333"
CASE = re.compile(r"^ENC-\d{6}-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}$")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def offline_core() -> Iterator[CoreClient]:
    """Neither the FAQ nor escalation may call the core: a client of a closed port proves it."""
    with CoreClient(f"http://127.0.0.1:{closed_port()}", timeout_s=1, retry_delay_s=0.01) as core:
        yield core


def make_ctx(core: CoreClient, now: datetime = TUESDAY_1030, tenant: str = "demo") -> ServiceContext:
    unused_redis = redis.Redis(port=closed_port())
    return ServiceContext(core, unused_redis, tenant, "Transportes Express El Salvador", SV, now)


# -- FAQ and policies -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("question", "entry_id"),
    [
        ("donde cobro mi reembolso", "reembolso_donde"),
        ("Dónde cobro mi reembolzo??", "reembolso_donde"),
        ("aceptan tarjeta?", "formas_pago"),
        ("que pasa si no retiran mi paquete", "no_retirado"),
        ("perdi el codigo de rastreo", "codigo_perdido"),
        ("puedo mandar medicinas?", "prohibidos"),
        ("entregan a domicilio", "entrega_domicilio"),
    ],
)
def test_faq_search_finds_the_company_answer(offline_core: CoreClient, question: str, entry_id: str) -> None:
    found = faq.faq_search(make_ctx(offline_core), question)
    assert found and found[0].id == entry_id
    assert len(found) <= 3


def test_faq_search_finds_nothing_for_small_talk(offline_core: CoreClient) -> None:
    assert faq.faq_search(make_ctx(offline_core), "hola") == []
    assert faq.faq_search(make_ctx(offline_core), "   ") == []


def test_the_demo_faq_is_complete() -> None:
    data = faq.load_faq("demo")
    ids = [entry.id for entry in data.entries]
    assert len(ids) >= 10 and len(set(ids)) == len(ids)
    assert all(entry.keywords and entry.answer for entry in data.entries)
    assert all("**" not in entry.answer for entry in data.entries)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("requirements", ["*DUI*", "bien empacado", "declarar qué contiene", "*No aceptamos:*",
                          "dinero en efectivo, armas o municiones", "animales vivos ni documentos legales originales"]),
        ("prohibited", ["*No aceptamos:* dinero en efectivo", "drogas o medicamentos controlados, animales vivos"]),
        ("unclaimed_policy", ["*15 días*", "*3, 7 y 14*", "vuelven al origen"]),
        ("refund", ["*punto de origen*", "*DUI*"]),
        ("payment", ["lo paga quien envía", "efectivo o tarjeta", "*monto a cobrar*"]),
        ("payment_methods", ["aceptamos *efectivo o tarjeta*", "se paga en efectivo al retirarlo"]),
        ("paid_sender", ["*no tienes que pagar nada*", "pago directo", "*DUI*"]),
        ("pickup_by_other", ["*DUI*", "otra persona", "asesor"]),
    ],
)
def test_policy_answers_come_from_faq_data(offline_core: CoreClient, topic: str, expected: list[str]) -> None:
    text = faq.policy_text(make_ctx(offline_core), topic)
    for part in expected:
        assert part in text
    sent = faq.policy_answer(make_ctx(offline_core), topic)
    first = sent[0].body if isinstance(sent[0], Text | Buttons) else ""
    assert first and text.startswith(first.removesuffix("\n\n¿Quieres más detalles?"))
    assert faq.lines(first) <= faq.MAX_LINES + 2  # six lines, then the question after a blank line


def test_prohibited_items_match_the_core_policies() -> None:
    with BackgroundServer(create_sandbox_app()) as server, CoreClient(server.url) as core:
        assert faq.load_faq("demo").policies["prohibited"] == core.policies()["prohibited"]


def test_unknown_topic_and_missing_tenant_file_are_clear_errors(offline_core: CoreClient) -> None:
    with pytest.raises(ValueError, match="unknown policy topic"):
        faq.policy_answer(make_ctx(offline_core), "weather")
    with pytest.raises(faq.FaqDataError, match=r"faq_data/nadie\.yaml"):
        faq.policy_answer(make_ctx(offline_core, tenant="nadie"), "refund")
    with pytest.raises(faq.FaqDataError):
        faq.load_faq("../etc/passwd")


def test_a_malformed_faq_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "roto.yaml").write_text("policies: {}\nfaq:\n  - id: x\n", encoding="utf-8")
    with pytest.raises(faq.FaqDataError, match="roto.yaml"):
        faq.load_faq("roto", tmp_path)


# -- escalation -----------------------------------------------------------------------------------

def escalate(core: CoreClient, now: datetime, priority: str = "normal", name: str | None = "María López"
             ) -> escalation.EscalationDecision:
    return escalation.escalate(make_ctx(core, now), reason="human_agent", priority=priority, customer_name=name,
                               company_hours=SUPPORT_HOURS, emergency_phone=EMERGENCY)


def test_inside_support_hours_an_agent_takes_the_chat(offline_core: CoreClient) -> None:
    decision = escalate(offline_core, TUESDAY_1030)
    [message] = decision.replies
    assert isinstance(message, Text)
    assert CASE.match(decision.case_number) and decision.case_number.startswith("ENC-260106-")
    assert decision.callback is False and decision.priority == "normal" and decision.reason == "human_agent"
    assert "Listo, María, te conecto con un asesor" in message.body
    assert "tomará este chat en breve" in message.body
    assert f"Tu número de caso: *{decision.case_number}*" in message.body
    assert EMERGENCY not in message.body and "Lamento" not in message.body


@pytest.mark.parametrize(
    ("now", "when"),
    [
        (datetime(2026, 1, 6, 19, 45, tzinfo=SV), "mañana (miércoles) a las 8:00am"),
        (datetime(2026, 1, 6, 6, 15, tzinfo=SV), "hoy a las 8:00am"),
        (datetime(2026, 1, 10, 14, 0, tzinfo=SV), "el lunes 12/01 a las 8:00am"),
        (datetime(2026, 1, 11, 23, 30, tzinfo=SV), "mañana (lunes) a las 8:00am"),
    ],
)
def test_outside_support_hours_the_bot_is_honest_about_the_callback(
    offline_core: CoreClient, now: datetime, when: str
) -> None:
    decision = escalate(offline_core, now)
    [message] = decision.replies
    assert isinstance(message, Text)
    assert decision.callback is True
    assert "nuestro equipo no está disponible" in message.body
    assert "lunes a viernes de 8:00am a 6:00pm y sábado de 8:00am a 1:00pm" in message.body
    assert f"Un asesor te contactará {when} por este chat." in message.body
    assert "📞 Si es urgente, llama al +503 2222-3333." in message.body
    assert decision.case_number in message.body
    assert "en breve" not in message.body


def test_a_complaint_apologises_and_goes_high(offline_core: CoreClient) -> None:
    inside = escalate(offline_core, TUESDAY_1030, "high")
    assert inside.priority == "high" and inside.callback is False
    assert isinstance(inside.replies[0], Text)
    body = inside.replies[0].body
    assert body.startswith("Lamento mucho lo que pasó, María 😔") and "*prioridad alta*" in body
    assert "supervisor" in body
    outside = escalate(offline_core, datetime(2026, 1, 6, 22, 0, tzinfo=SV), "high", None)
    assert isinstance(outside.replies[0], Text)
    assert outside.replies[0].body.startswith("Lamento mucho lo que pasó 😔")
    assert EMERGENCY in outside.replies[0].body


def test_case_numbers_are_random_and_unambiguous(offline_core: CoreClient) -> None:
    numbers = {escalate(offline_core, TUESDAY_1030).case_number for _ in range(40)}
    assert len(numbers) == 40 and all(CASE.match(n) for n in numbers)
    with pytest.raises(ValueError):
        escalate(offline_core, TUESDAY_1030, "urgent")


@pytest.mark.parametrize(
    ("intent", "frustrated", "priority"),
    [
        ("complaint", False, "high"),
        ("human_agent", True, "high"),
        ("human_agent", False, "normal"),
        ("change_delivery", False, "normal"),
        ("sales_lead", False, "normal"),
        ("not_understood", False, "normal"),
    ],
)
def test_priority_for(intent: str, frustrated: bool, priority: str) -> None:
    assert escalation.priority_for(intent, frustrated) == priority
