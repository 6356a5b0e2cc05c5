"""What the case page prints, without a server: WhatsApp formatting as safe HTML, canned answers whose
variables are empty, masked phone numbers, and history, reasons and points in words (never their ids)."""

from __future__ import annotations

from typing import Any

import pytest

from console import canned, words
from console.customer_panel import format_phone, mask_phone, sees_phone, tel_href
from console.summary import Facts, from_facts
from console.whatsapp_text import to_html
from handoff.agents import Agent


@pytest.mark.parametrize(("text", "html"), [
    ("*Paquete encontrado*", "<strong>Paquete encontrado</strong>"),
    ("es _urgente_ y ~caro~", "es <em>urgente</em> y <s>caro</s>"),
    ("código: ```SV2026 *no* _así_```", "código: <code>SV2026 *no* _así_</code>"),
    ("*_las dos_*", "<strong><em>las dos</em></strong>"),
    ("Monto: *$35.00* al retirar", "Monto: <strong>$35.00</strong> al retirar"),
    ("```línea 1\nlínea 2```", "<code>línea 1\nlínea 2</code>"),
    # what is not formatting stays as written
    ("la_union, in_handoff y 2*3*4", "la_union, in_handoff y 2*3*4"),
    ("* no es negrita *", "* no es negrita *"),
    ("*una\nlínea*", "*una\nlínea*"),
    ("**", "**"),
    # escaped first: no markup from anyone's text, formatting or not
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("*<b>x</b>*", "<strong>&lt;b&gt;x&lt;/b&gt;</strong>"),
    ("_<img src=x onerror=alert(1)>_", "<em>&lt;img src=x onerror=alert(1)&gt;</em>"),
    ("```</code><script>```", "<code>&lt;/code&gt;&lt;script&gt;</code>"),
    ("\"comillas\" & 'apóstrofos'", "&#34;comillas&#34; &amp; &#39;apóstrofos&#39;"),
])
def test_whatsapp_formatting_is_rendered_after_escaping(text: str, html: str) -> None:
    assert str(to_html(text)) == html


VALUES = {"nombre": "María", "codigo": "SV20260105007834", "caso": "C-0042", "agente": "Carlos"}


@pytest.mark.parametrize(("body", "without_name"), [
    ("¡Con gusto, {nombre}!", "¡Con gusto!"),
    ("Hola {nombre}, soy {agente} del equipo de soporte.", "Hola, soy Carlos del equipo de soporte."),
    ("Dame un momento, {nombre}: estoy revisando.", "Dame un momento: estoy revisando."),
    ("{nombre}, tu paquete ya llegó.", "Tu paquete ya llegó."),
    ("Listo. {nombre}, tu caso es {caso}.", "Listo. Tu caso es C-0042."),
    ("¡{nombre}, gracias por escribir!", "¡Gracias por escribir!"),
    ("Hola, {nombre}, ¿cómo estás?", "Hola, ¿cómo estás?"),
    ("Gracias, {nombre}, por tu paciencia.", "Gracias por tu paciencia."),
    ("Gracias {nombre}", "Gracias"),
    ("Saludos {nombre}.", "Saludos."),
    ("Hola {nombre}\nTu caso es {caso}.", "Hola\nTu caso es C-0042."),
])
def test_an_empty_name_takes_its_comma_and_space_with_it(body: str, without_name: str) -> None:
    assert canned.fill(body, {**VALUES, "nombre": ""}) == without_name
    assert canned.fill(body, {**VALUES, "nombre": None}) == without_name
    assert canned.fill(body, {**VALUES, "nombre": "   "}) == without_name
    filled = canned.fill(body, VALUES)
    assert "María" in filled and "{" not in filled


@pytest.mark.parametrize(("body", "without_code"), [
    ("Estoy verificando tu paquete {codigo} con el punto.", "Estoy verificando tu paquete con el punto."),
    ("Tu paquete ({codigo}) está listo.", "Tu paquete está listo."),
    ("Revisé {codigo}, {nombre}.", "Revisé, María."),
])
def test_other_empty_variables_fall_back_the_same_way(body: str, without_code: str) -> None:
    assert canned.fill(body, {**VALUES, "codigo": ""}) == without_code


def test_the_default_answers_read_well_with_every_variable_empty() -> None:
    empty = {"nombre": "", "codigo": "", "caso": "C-0042", "agente": "Carlos"}
    assert [canned.fill(body, empty) for _, body in canned.DEFAULTS] == [
        "Hola, soy Carlos del equipo de soporte. Ya estoy revisando tu caso C-0042.",
        "Dame un momento: estoy verificando tu paquete con el punto.",
        "¡Con gusto! Si necesitas algo más, escríbenos y menciona el caso C-0042. 😊",
    ]
    # unknown braces are left as written, and a value is never re-read as a variable
    assert canned.fill("Hola {otro} {nombre}", {"nombre": "{caso}", "caso": "X"}) == "Hola {otro} {caso}"


@pytest.mark.parametrize(("phone", "shown", "masked"), [
    ("+50370000002", "+503 7000 0002", "+503 7••• ••02"),
    ("50361234567", "+503 6123 4567", "+503 6••• ••67"),
    ("+1 (555) 867-5310", "+15558675310", "+15•••••••10"),
])
def test_phones_are_shown_or_masked(phone: str, shown: str, masked: str) -> None:
    assert format_phone(phone) == shown
    assert mask_phone(phone) == masked
    assert sum(c.isdigit() for c in masked) <= 6  # at most the country code (3), one digit and the last two
    assert tel_href(shown) == "tel:+" + "".join(c for c in shown if c.isdigit())


@pytest.mark.parametrize(("role", "company_masks", "sees"), [
    ("agent", False, True), ("agent", True, False),
    ("supervisor", True, True), ("admin", True, True), ("supervisor", False, True),
])
def test_only_the_agent_role_of_a_masking_company_gets_the_masked_phone(role: str, company_masks: bool,
                                                                       sees: bool) -> None:
    agent = Agent(id=1, tenant_id=1, name="Carlos Rivas", email="c@example.com", role=role, active=True)
    assert sees_phone(agent, company_masks) is sees


NAMES = {"la_union": "La Unión - Punto Centro", "santa_ana": "Santa Ana - Punto Principal",
         "soyapango": "San Salvador - Punto Soyapango"}


def test_point_ids_become_names_in_the_bots_words() -> None:
    text = "Tu paquete está en la_union. Horario de santa_ana: 8 a 5; soyapango cierra a las 4."
    assert words.name_points(text, NAMES) == (
        "Tu paquete está en La Unión - Punto Centro. Horario de Santa Ana - Punto Principal: 8 a 5; "
        "San Salvador - Punto Soyapango cierra a las 4.")
    assert words.name_points("soporte@la_union.sv", NAMES) == "soporte@la_union.sv"  # not an id there
    assert words.point_name("la_union", NAMES) == "La Unión - Punto Centro"
    assert words.point_name("chalatenango_norte", NAMES) == "Chalatenango Norte"  # unknown id: readable
    assert words.point_name("Santa Ana", NAMES) == "Santa Ana"  # a city is no id
    facts = words.named_facts(Facts(case_number="C-1", reason="complaint", priority="high", point="la_union"), NAMES)
    assert facts.point == "La Unión - Punto Centro"


def test_history_reasons_and_states_read_as_words() -> None:
    assert words.history_line("wait_notice", {"told": True}) == (
        "Se le avisó al cliente que todos los asesores están ocupados")
    assert words.history_line("called", {"outcome": "no_answer", "note": "buzón de voz"}) == (
        "Llamó al cliente: No contestó — «buzón de voz»")
    assert words.history_line("called", {"outcome": "call_later"}) == "Llamó al cliente: Pidió que lo llamen después"
    assert words.history_line("some_future_action", {}) == "Otra acción en el caso"
    assert words.history_line("assign", {"to_agent": "Ana Martínez", "to_agent_id": 2}) == (
        "Asignó el caso a Ana Martínez")
    assert words.history_line("tag", {"tag": "reembolso"}) == "Agregó la etiqueta «reembolso»"
    assert words.history_line("called", {"outcome": "wrong_number", "note": " "}) == (
        "Llamó al cliente: Número equivocado")
    assert words.reason("change_delivery") == "quiere cambiar la entrega de un paquete"
    assert words.reason("fuera_de_capacidad") == "pidió ayuda de una persona"
    assert words.dialog_state("in_handoff") == "pasó la conversación a un agente"
    assert words.dialog_state("awaiting_some_new_frame") is None
    assert words.case_status("callback") == "Pendiente de llamada"
    assert words.message_kind("image") == "[imagen]" and words.message_kind("unsupported") == (
        "[mensaje que no es texto]")


@pytest.mark.parametrize(("code", "words_shown"), [
    ("interrupted", "No se envió: el envío se interrumpió y no se repite para no duplicarlo."),
    ("131047", "No se entregó: pasaron más de 24 horas desde el último mensaje del cliente."),
    ("63016", "No se entregó: pasaron más de 24 horas desde el último mensaje del cliente."),
    ("131026", "No se entregó: ese número no tiene WhatsApp o no puede recibir mensajes."),
    ("999999", "No se pudo entregar este mensaje."),
    (None, "No se pudo entregar este mensaje."),
])
def test_delivery_errors_read_in_spanish(code: str | None, words_shown: str) -> None:
    assert words.delivery_error(code).startswith(words_shown)


def test_a_case_page_presented_in_words_holds_no_ids() -> None:
    detail: dict[str, Any] = {
        "reason": "not_understood", "dialog_state": "in_handoff",
        "messages": [{"direction": "out", "body": "Te espero en *la_union*"},
                     {"direction": "in", "body": "<b>hola</b> la_union"}],
        "summary": "María López presentó un reclamo.\nÚltimos mensajes del cliente: «*urgente*»",
        "history": [{"action": "wait_notice", "data": {}}, {"action": "callback_requested", "data": {}}],
        "packages": [{"code": "SV1", "status": "Listo para retirar", "destination": "la_union"}],
    }
    words.present_case(detail, NAMES)
    assert detail["messages"][0]["html"] == "Te espero en <strong>La Unión - Punto Centro</strong>"
    assert detail["messages"][1]["html"] == "&lt;b&gt;hola&lt;/b&gt; la_union"  # the customer's words stay theirs
    assert detail["summary_html"].endswith("«<strong>urgente</strong>»")
    assert [h["text"] for h in detail["history"]] == [
        "Se le avisó al cliente que todos los asesores están ocupados", "El cliente pidió que lo llamen"]
    assert detail["reason_text"] == "el bot no le entendió varias veces"
    assert detail["dialog_state_text"] == "pasó la conversación a un agente"
    assert detail["packages"][0]["destination"] == "La Unión - Punto Centro"
    assert [o["label"] for o in detail["call_outcomes"]] == [
        "Contestó y se resolvió", "No contestó", "Número equivocado", "Pidió que lo llamen después"]


def test_the_summary_from_the_facts_is_all_words() -> None:
    facts = Facts(case_number="C-0042", reason="complaint", priority="high", customer_name="María López",
                  intents=["track_package", "human_agent", "some_new_intent", "track_package"],
                  packages=[("SV20260105007834", "Listo para retirar"), ("SV20260106012345", None)],
                  point="La Unión - Punto Centro")
    said = [("cliente", "hola"), ("bot", "¿En qué te ayudo?"), ("cliente", "mi paquete"), ("cliente", "*ya*")]
    assert from_facts(facts, said) == "\n".join([
        "María López presentó un reclamo (caso C-0042). Prioridad ALTA.",
        "Consultó: rastreo.",
        "Paquetes: SV20260105007834 (Listo para retirar), SV20260106012345.",
        "Punto de servicio: La Unión - Punto Centro.",
        "Últimos mensajes del cliente: «mi paquete» «*ya*»",
    ])
    anonymous = Facts(case_number="C-1", reason="fuera_de_capacidad", priority="normal")
    assert from_facts(anonymous, []) == "El cliente pidió ayuda de una persona (caso C-1)."
