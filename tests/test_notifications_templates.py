"""notifications/templates.yaml: the approved templates load, validate, and fill (issue 7)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from channels.outbound import Template
from notifications.templates import (
    NOTIFICATION_KINDS,
    MissingTemplateValue,
    TemplateConfigError,
    build_message,
    load_file,
    template,
    template_for_notification,
    templates_for,
)

ARRIVED_VALUES = {"customer_name": "María", "tracking_code": "SV20260106012345", "point_id": "santa_ana",
                  "point_name": "Santa Ana - Punto Principal", "point_address": "Calle Libertad esq. 10ª Av. Norte",
                  "point_hours": "lun-vie 8:00–18:00", "amount_due": "$35.00"}


def test_the_demo_tenant_has_an_approved_template_for_every_notification() -> None:
    specs = templates_for("demo")
    assert {s.notification for s in specs} == NOTIFICATION_KINDS
    assert all(s.language == "es" and s.category == "UTILITY" and s.twilio_content_sid for s in specs)
    assert templates_for("nobody") == []
    assert template_for_notification("nobody", "arrived") is None


def test_a_template_is_filled_into_the_outbound_message_with_its_quick_replies() -> None:
    spec = template("demo", "paquete_llego")
    assert [b.title for b in spec.buttons] == ["Enviar ubicación", "Hablar con alguien"]
    message = build_message(spec, ARRIVED_VALUES)
    assert message == Template(
        name="paquete_llego", language="es",
        body_params=("María", "SV20260106012345", "Santa Ana - Punto Principal",
                     "Calle Libertad esq. 10ª Av. Norte", "lun-vie 8:00–18:00", "$35.00"),
        button_payloads=("pin:santa_ana", "menu_human"), content_sid=spec.twilio_content_sid)
    assert spec.render(ARRIVED_VALUES).startswith("¡Hola María! 👋 Tu paquete SV20260106012345 llegó")


def test_a_missing_value_is_refused_before_anything_is_sent() -> None:
    spec = template("demo", "paquete_llego")
    with pytest.raises(MissingTemplateValue, match="amount_due"):
        build_message(spec, {k: v for k, v in ARRIVED_VALUES.items() if k != "amount_due"})
    with pytest.raises(MissingTemplateValue, match="point_id"):
        build_message(spec, {k: v for k, v in ARRIVED_VALUES.items() if k != "point_id"})
    with pytest.raises(KeyError, match="no template 'nope'"):
        template("demo", "nope")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("name: a\n        notification: arrived\n        language: es\n        body: 'Hola {{1}} {{2}}'\n"
         "        params: [customer_name]", "placeholders [1, 2] do not match 1 params"),
        ("name: a\n        notification: lost\n        language: es\n        body: 'Hola'",
         "unknown notification 'lost'"),
        ("name: a\n        notification: arrived\n        body: 'Hola'", "'language' is required"),
        ("name: a\n        notification: arrived\n        language: es\n        body: 'Hola'\n        buttons:\n"
         "          - title: Un título demasiado largo\n            payload: x", "longer than 20"),
        ("name: a\n        notification: arrived\n        language: es\n        body: 'Hola'\n"
         "        twilio_content_sid: HX123", "HX + 32 hex digits"),
    ],
)
def test_a_malformed_templates_file_says_what_is_wrong(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(f"tenants:\n  acme:\n    templates:\n      - {entry}\n", encoding="utf-8")
    with pytest.raises(TemplateConfigError, match=re.escape(message)):
        load_file(path)
