"""Canned answers: quick replies per tenant, with variables filled from the case.

Variables: {nombre} the customer's first name, {codigo} the latest tracking
code the customer asked about, {caso} the case number, {agente} the agent's
first name. Any other text in braces is left as written. The agent can edit
the filled text before sending.

A variable with no value takes its punctuation with it, so the sentence still
reads well: "¡Con gusto, {nombre}!" becomes "¡Con gusto!", "Hola {nombre}, soy
Ana" becomes "Hola, soy Ana", "{nombre}, tu paquete" becomes "Tu paquete", "tu
paquete {codigo} con el punto" becomes "tu paquete con el punto" and
"el caso ({caso})" becomes "el caso".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from psycopg import Connection

VARIABLES = ("nombre", "codigo", "caso", "agente")
TITLE_MAX, BODY_MAX = 60, 1000
_VARIABLE = re.compile(r"\{(" + "|".join(VARIABLES) + r")\}")
DEFAULTS = (
    ("Saludo", "Hola {nombre}, soy {agente} del equipo de soporte. Ya estoy revisando tu caso {caso}."),
    ("Buscando paquete", "Dame un momento, {nombre}: estoy verificando tu paquete {codigo} con el punto."),
    ("Despedida", "¡Con gusto, {nombre}! Si necesitas algo más, escríbenos y menciona el caso {caso}. 😊"),
)


class CannedError(ValueError):
    pass


_EMPTY = "\x00"
# What an empty variable takes with it, in this order (each rule is one sentence shape):
_TIDY: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\([ \t]*\x00[ \t]*\)"), _EMPTY),  # "el caso ({caso})" -> "el caso"
    (re.compile(r"[ \t]*,[ \t]*\x00[ \t]*,[ \t]*(?=[¡¿])"), ", "),  # "Hola, {nombre}, ¿cómo estás?" -> "Hola, ¿cómo..."
    (re.compile(r"[ \t]*,[ \t]*\x00[ \t]*,[ \t]*"), " "),  # "Gracias, {nombre}, por escribir" -> "Gracias por..."
    (re.compile(r"[ \t]*,[ \t]*\x00"), ""),  # "¡Con gusto, {nombre}!" -> "¡Con gusto!"
    (re.compile(r"[ \t]+\x00(?=[ \t]*[,.;:!?)])"), ""),  # "Hola {nombre}, soy Ana" -> "Hola, soy Ana"
    (re.compile(r"(?<=\S)[ \t]+\x00[ \t]+(?=\S)"), " "),  # "tu paquete {codigo} con el punto" -> "tu paquete con..."
)
# "{nombre}, tu paquete llegó" -> "Tu paquete llegó": the next word now starts the sentence.
_LEADING = re.compile(r"(^|[\n.!?¡¿][ \t]*)\x00[ \t]*,?[ \t]*(\w)")


def fill(body: str, values: Mapping[str, str | None]) -> str:
    """The answer with its variables filled; an empty one removes itself with its adjoining comma and space."""
    text = _VARIABLE.sub(lambda m: (values.get(m.group(1)) or "").replace(_EMPTY, "").strip() or _EMPTY,
                         body.replace(_EMPTY, ""))
    if _EMPTY not in text:
        return text
    text = _LEADING.sub(lambda m: m.group(1) + m.group(2).upper(), text)
    for pattern, replacement in _TIDY:
        text = pattern.sub(replacement, text)
    return re.sub(r"[ \t]*\x00", "", text)


def for_tenant(conn: Connection[Any], tenant_id: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT id, title, body FROM canned_answers WHERE tenant_id = %s ORDER BY title",
                        (tenant_id,)).fetchall()
    return [dict(r) for r in rows]


def add(conn: Connection[Any], tenant_id: int, title: str, body: str) -> int:
    title, body = title.strip(), body.strip()
    if not title or not body:
        raise CannedError("Una respuesta rápida necesita título y texto.")
    if len(title) > TITLE_MAX or len(body) > BODY_MAX:
        raise CannedError(f"El título puede tener hasta {TITLE_MAX} caracteres y el texto hasta {BODY_MAX}.")
    row = conn.execute(
        "INSERT INTO canned_answers (tenant_id, title, body) VALUES (%s, %s, %s)"
        " ON CONFLICT (tenant_id, title) DO UPDATE SET body = EXCLUDED.body RETURNING id",
        (tenant_id, title, body),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def remove(conn: Connection[Any], tenant_id: int, answer_id: int) -> bool:
    row = conn.execute("DELETE FROM canned_answers WHERE id = %s AND tenant_id = %s RETURNING id",
                       (answer_id, tenant_id)).fetchone()
    return row is not None


def seed_defaults(conn: Connection[Any], tenant_id: int) -> None:
    """A few useful answers for a new tenant (kept when they exist already)."""
    for title, body in DEFAULTS:
        conn.execute("INSERT INTO canned_answers (tenant_id, title, body) VALUES (%s, %s, %s)"
                     " ON CONFLICT (tenant_id, title) DO NOTHING", (tenant_id, title, body))
