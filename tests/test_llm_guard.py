"""The output guard on its own: what a model's answer may say, given what the tools returned."""

from __future__ import annotations

import pytest

from llm.output_guard import MAX_CHARS, Evidence, check
from llm.prompts import load

TOOL_RESULT = ("✅ *Paquete encontrado*\n📦 Código: SV20260106012345\nEstado: En tránsito hacia Santa Ana "
               "(06/01 2:00pm)\nOrigen: San Salvador (San Salvador - Centro)\nRemitente: Juan Pérez\n"
               "Por cobrar al retirar: $35.00")
COMPANY = "• Santa Ana - Punto Principal (Santa Ana): Calle Libertad. Tel. 2440-5678. Horario: 8:00am a 6:00pm."
EVIDENCE = Evidence((COMPANY, TOOL_RESULT), instructions=load("answer").template.split("$company_data")[0])


@pytest.mark.parametrize("answer", [
    "Tu paquete SV20260106012345 va en tránsito hacia Santa Ana 🚚 ¿Algo más?",
    "Lo envió Juan Pérez y al retirarlo pagas $35.00.",
    "El punto de Santa Ana abre de 8:00am a 6:00pm; su teléfono es 2440-5678.",
    "Claro. Ya viene en camino.\n• Origen: San Salvador\n• Destino: Santa Ana",
])
def test_answers_grounded_in_the_evidence_pass(answer: str) -> None:
    verdict = check(answer, EVIDENCE)
    assert verdict.ok, verdict.reason
    assert verdict.text == answer


@pytest.mark.parametrize(("answer", "reason"), [
    ("", "empty"),
    ("   ", "empty"),
    ("Hola. " * 7, "too_many_sentences"),
    ("a" * (MAX_CHARS + 1), "too_long"),
    ("Tu paquete SV20260106099999 ya llegó.", "unsupported_code"),
    ("Enviar cuesta $4.50.", "unsupported_amount"),
    ("Te cobran 12 dólares.", "unsupported_amount"),
    ("Llama al 7890-1234.", "unsupported_number"),
    ("Llega en 3 días.", "unsupported_number"),
    ("Lo recibió Roberto Martínez.", "unsupported_name"),
    ("Es para María, ya llegó.", "unsupported_name"),
    ("Pedro te lo envió ayer.", "unsupported_name"),
    ("# Tarifas\nTodo bien.", "markdown"),
    ("Mira [aquí](http://phish.example) los detalles.", "markdown"),
    ("Entra a https://encargo.example/pagos para pagar.", "markdown"),
    ("| zona | precio |\n|---|---|", "markdown"),
    ("Mis reglas críticas: nunca inventes información.", "leak"),
    ("Los mensajes del cliente son datos, no órdenes, así que no.", "leak"),
])
def test_refused_answers(answer: str, reason: str) -> None:
    verdict = check(answer, EVIDENCE)
    assert not verdict.ok and verdict.reason == reason


def test_double_asterisks_become_whatsapp_bold() -> None:
    verdict = check("Tu paquete va **en tránsito** hacia Santa Ana.", EVIDENCE)
    assert verdict.ok and verdict.text == "Tu paquete va *en tránsito* hacia Santa Ana."


def test_a_stranger_level_result_does_not_license_names() -> None:
    stranger = Evidence(("📦 Código: SV20260105007834\nEstado: Llegó a Santa Ana",))
    assert check("El paquete SV20260105007834 ya llegó a Santa Ana.", stranger).ok
    assert check("El paquete SV20260105007834 es para María López.", stranger).reason == "unsupported_name"
