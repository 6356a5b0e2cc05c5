"""channels.limits: every message is cut down to what WhatsApp accepts, never rejected by Meta."""

from __future__ import annotations

import pytest

from channels import limits
from channels.meta_cloud import request_body
from channels.outbound import (
    Buttons,
    Choice,
    ChoiceList,
    Location,
    OutboundMessage,
    Recipient,
    Template,
    Text,
)
from tests.fakes.graph_api import validate_message

WORDS = "El paquete salió de la bodega central y va camino a la sucursal de destino "


def choices(n: int, title: str = "Opción número {i}") -> tuple[Choice, ...]:
    return tuple(Choice(id=f"opt_{i}", title=title.format(i=i)) for i in range(1, n + 1))


def assert_meta_accepts(parts: list[OutboundMessage]) -> None:
    for part in parts:
        validate_message(request_body(Recipient(phone="+50370000001"), part, "ref"))


# --- text ---------------------------------------------------------------------------------


def test_text_of_5000_characters_becomes_two_parts_within_4096() -> None:
    text = (WORDS * 70)[:5000]
    parts = limits.fit(Text(text))
    assert len(parts) == 2
    assert all(isinstance(p, Text) and 0 < len(p.body) <= 4096 for p in parts)
    assert " ".join(p.body for p in parts if isinstance(p, Text)).split() == text.split()
    assert_meta_accepts(parts)


def test_split_prefers_paragraph_boundaries() -> None:
    paragraph = (WORDS * 20).strip()  # ~1500 characters
    text = "\n\n".join([paragraph + " A.", paragraph + " B.", paragraph + " C.", paragraph + " D."])
    parts = limits.split_text(text)
    assert len(parts) == 2
    assert parts[0].endswith(" B.")  # two whole paragraphs fit; the cut is between paragraphs
    assert parts[1].startswith("El paquete")


def test_split_falls_back_to_sentences_then_words_then_a_hard_cut() -> None:
    sentences = "Su paquete llegó. " * 400  # one line, ~7200 characters
    parts = limits.split_text(sentences, 4096)
    assert all(p.endswith("llegó.") for p in parts)
    no_spaces = "x" * 9000
    hard = limits.split_text(no_spaces, 4096)
    assert [len(p) for p in hard] == [4096, 4096, 808]
    assert "".join(hard) == no_spaces


def test_short_text_is_unchanged() -> None:
    assert limits.fit(Text("Hola 👋")) == [Text("Hola 👋")]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Rastrear mi paquete ahora mismo", 20, "Rastrear mi paquete…"),
        ("Sucursal", 20, "Sucursal"),
        ("Supercalifragilisticoespialidoso", 10, "Supercali…"),
    ],
)
def test_truncate_cuts_at_a_word_boundary_with_an_ellipsis(text: str, limit: int, expected: str) -> None:
    assert limits.truncate(text, limit) == expected
    assert len(limits.truncate(text, limit)) <= limit


# --- reply buttons ------------------------------------------------------------------------


def test_up_to_three_buttons_stay_buttons_with_titles_fitted() -> None:
    message = Buttons(
        body="¿Qué deseas hacer?",
        buttons=(
            Choice("track", "*Rastrear* mi paquete ahora mismo"),  # markdown and 30+ characters
            Choice("agent", "Hablar con un agente"),
            Choice("x" * 300, "Hablar con un agente"),  # duplicate title, id too long
        ),
        header="H" * 80,
        footer="F" * 80,
    )
    [fitted] = limits.fit(message)
    assert isinstance(fitted, Buttons)
    titles = [b.title for b in fitted.buttons]
    assert titles[0] == "Rastrear mi paquete…"
    assert all(len(t) <= 20 and "*" not in t for t in titles)
    assert len(set(titles)) == 3
    assert len(fitted.buttons[2].id) == 256
    assert fitted.header is not None and len(fitted.header) <= 60
    assert fitted.footer is not None and len(fitted.footer) <= 60
    assert_meta_accepts([fitted])


def test_four_to_ten_buttons_become_one_list() -> None:
    message = Buttons(body="Elige una sucursal", buttons=choices(5, "Sucursal de San Salvador {i}"))
    [fitted] = limits.fit(message)
    assert isinstance(fitted, ChoiceList)
    assert [r.id for r in fitted.rows] == [f"opt_{i}" for i in range(1, 6)]
    assert all(len(r.title) <= 24 for r in fitted.rows)
    assert fitted.button_label == limits.DEFAULT_LIST_BUTTON
    assert_meta_accepts([fitted])


def test_eleven_or_more_choices_become_several_lists() -> None:
    message = ChoiceList(body="Elige tu departamento", button_label="Departamentos", rows=choices(25),
                         header="Cobertura", footer="Transportes Express")
    parts = limits.fit(message)
    assert [len(p.rows) for p in parts if isinstance(p, ChoiceList)] == [10, 10, 5]
    assert [p.body for p in parts if isinstance(p, ChoiceList)] == [
        "Elige tu departamento", "Más opciones (2/3)", "Más opciones (3/3)",
    ]
    assert [p.header for p in parts if isinstance(p, ChoiceList)] == ["Cobertura", None, None]
    assert_meta_accepts(parts)


def test_list_fields_are_cut_to_their_limits() -> None:
    row = Choice("r" * 250, "Título de fila demasiado largo para una lista", description="d " * 60)
    message = ChoiceList(body="Elige", button_label="Ver todas las opciones disponibles", rows=(row,),
                         section_title="Una sección con título muy largo")
    [fitted] = limits.fit(message)
    assert isinstance(fitted, ChoiceList)
    assert len(fitted.button_label) <= 20
    assert fitted.section_title is not None and len(fitted.section_title) <= 24
    assert len(fitted.rows[0].id) == 200
    assert len(fitted.rows[0].title) <= 24 and fitted.rows[0].title.endswith("…")
    assert fitted.rows[0].description is not None and len(fitted.rows[0].description) <= 72
    assert_meta_accepts([fitted])


def test_long_interactive_body_goes_first_as_text_and_the_question_stays_with_the_buttons() -> None:
    explanation = (WORDS * 25).strip()  # ~1900 characters
    message = Buttons(body=explanation + "\n\n¿Deseas programar la entrega?",
                      buttons=(Choice("yes", "Sí"), Choice("no", "No")))
    parts = limits.fit(message)
    assert [type(p) for p in parts] == [Text, Buttons]
    assert isinstance(parts[0], Text) and parts[0].body == explanation
    assert isinstance(parts[1], Buttons) and parts[1].body == "¿Deseas programar la entrega?"
    assert_meta_accepts(parts)


def test_interactive_body_without_boundaries_is_still_split_to_fit() -> None:
    message = Buttons(body="y" * 3000, buttons=(Choice("ok", "OK"),))
    parts = limits.fit(message)
    assert isinstance(parts[-1], Buttons) and 0 < len(parts[-1].body) <= 1024
    assert "".join(p.body for p in parts if isinstance(p, Text | Buttons)) == "y" * 3000
    assert_meta_accepts(parts)


def test_no_choices_is_plain_text() -> None:
    assert limits.fit(Buttons(body="Gracias", buttons=())) == [Text("Gracias")]


def test_locations_and_templates_are_passed_through() -> None:
    location = Location(13.6929, -89.2182, name="Sucursal Centro", address="Calle Arce 123")
    template = Template("paquete_llego", "es", body_params=("María", "SV1"), button_payloads=("PKG:SV1",))
    assert limits.fit(location) == [location]
    assert limits.fit(template) == [template]
