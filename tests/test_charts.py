"""console/charts.py: the SVG charts the operations view and the monthly report draw, read as XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - parsing our own output
from typing import Any

from console import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: Any) -> ET.Element:
    root = ET.fromstring(str(markup))  # noqa: S314 - our own output
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def accessible(root: ET.Element) -> tuple[str, str]:
    """The chart's title and description, found through aria-labelledby as assistive technology does."""
    assert root.get("role") == "img"
    title_id, desc_id = (root.get("aria-labelledby") or "").split()
    title = next(e for e in root.iter() if e.get("id") == title_id)
    desc = next(e for e in root.iter() if e.get("id") == desc_id)
    assert (title.tag, desc.tag) == (f"{SVG}title", f"{SVG}desc")
    return title.text or "", desc.text or ""


def test_bars_scale_with_width_and_carry_their_numbers_as_text() -> None:
    bars = [charts.Bar("Rastrear un paquete", 0.65, "65 %", "130 msj"), charts.Bar("Horarios", 0.15, "15 %")]
    root = parse(charts.hbars("Intenciones", bars, scale_max=1.0))
    assert root.get("viewBox", "").startswith("0 0 ") and root.get("width") is None  # scales with its box
    assert accessible(root) == ("Intenciones", "Intenciones: Rastrear un paquete 65 %; Horarios 15 %.")
    assert {"Rastrear un paquete", "65 %", "130 msj", "Horarios", "15 %"} <= set(texts(root))
    filled = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == charts.BAR]
    assert [float(r.get("width", 0)) for r in filled] == [0.65 * 290, 0.15 * 290]  # against scale_max


def test_labels_are_escaped_and_an_empty_chart_says_so() -> None:
    root = parse(charts.hbars("<b>x</b>", [charts.Bar("<script>alert(1)</script>", 1, "1 & 2")]))
    assert accessible(root)[0] == "<b>x</b>" and "<script>alert(1)</script>" in texts(root)
    assert "1 & 2" in texts(root) and not list(root.iter(f"{SVG}script"))
    assert "Sin datos" in texts(parse(charts.hbars("Intenciones", [])))
    assert "Nada aún" in texts(parse(charts.series("Por hora", [charts.Point("1 h", None)], empty="Nada aún")))


def test_series_columns_a_line_and_a_target_line() -> None:
    points = [charts.Point(f"{h} h", float(v)) for h, v in enumerate([0, 3, 5, 2])]
    root = parse(charts.series("Conversaciones por hora", points, value_text="{:.0f}", target=4,
                               target_text="Meta"))
    columns = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == charts.BAR]
    assert len(columns) == 4 and float(columns[2].get("height", 0)) > float(columns[1].get("height", 0))
    target = [line for line in root.iter(f"{SVG}line") if line.get("stroke") == charts.TARGET]
    assert len(target) == 1 and target[0].get("stroke-dasharray")
    assert {"3", "5", "2", "Meta: 4", "0 h", "3 h"} <= set(texts(root))
    assert accessible(root)[1] == "Conversaciones por hora: 0 h 0; 1 h 3; 2 h 5; 3 h 2. Meta: 4."
    line = parse(charts.series("Por día", points, line=True))
    assert len(list(line.iter(f"{SVG}polyline"))) == 1 and len(list(line.iter(f"{SVG}circle"))) == 4


def test_many_steps_keep_every_few_axis_labels() -> None:
    points = [charts.Point(f"{d:02d}/12", float(d)) for d in range(1, 31)]
    root = parse(charts.series("Por día", points))
    labels = [t for t in texts(root) if t.endswith("/12")]
    assert 10 <= len(labels) <= 15 and "01/12" in labels  # readable on a phone; the numbers stay in <desc>
    assert "30/12 30" in accessible(root)[1]


def test_distribution_of_ratings() -> None:
    root = parse(charts.distribution("Calificaciones", [("1", 0), ("2", 1), ("3", 0), ("4", 1), ("5", 2)]))
    parts = [r for r in root.iter(f"{SVG}rect") if r.get("height") == "22"]
    assert [r.get("fill") for r in parts] == [charts.SCALE_COLOURS[1], charts.SCALE_COLOURS[3],
                                             charts.SCALE_COLOURS[4]]  # nothing drawn for a count of 0
    assert [float(r.get("width", 0)) for r in parts] == [100.0, 100.0, 200.0]
    assert {"1: 0", "5: 2"} <= set(texts(root))
    assert accessible(root)[1] == "Calificaciones: 1 0 (0 %); 2 1 (25 %); 3 0 (0 %); 4 1 (25 %); 5 2 (50 %)."
    assert "Sin calificaciones" in texts(parse(charts.distribution("Calificaciones", [("1", 0)])))


def test_each_chart_has_its_own_ids_and_the_same_chart_the_same_markup() -> None:
    one = charts.hbars("Intenciones", [charts.Bar("Horarios", 1, "1")])
    assert one == charts.hbars("Intenciones", [charts.Bar("Horarios", 1, "1")])
    others = [charts.hbars("Intenciones", [charts.Bar("Precios", 1, "1")]), charts.hbars("Otro", []),
              charts.distribution("Intenciones", [("Horarios", 1)])]
    ids = {parse(chart).get("aria-labelledby") for chart in (one, *others)}
    assert len(ids) == 4
