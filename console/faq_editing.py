"""What an admin's form does to the company's FAQ: the next content, checked, or a Spanish reason why not.

Pure functions over `storage.faq_content.FaqData` (the page, console/faq_page.py,
stores what they return as a new version). An entry keeps its id when it is
edited, so a customer's "¿Quieres más detalles?" button keeps naming it; a new
entry's id is made from its question. The policy topics are listed in
`POLICY_FIELDS` in the order the page shows them, with the names an admin reads;
topics the page does not know are kept as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from services.normalize import fold_words
from storage.faq_content import FaqData, FaqEntry

QUESTION_MAX = 200
ANSWER_MAX = 1500  # about four WhatsApp screens; longer texts are sent in parts anyway
KEYWORD_MAX, KEYWORDS_MAX = 60, 40
POLICY_MAX, LINE_MAX = 3000, 200
_ID_CHARS = re.compile(r"[^a-z0-9]+")


class FaqFormError(ValueError):
    """A form the page refuses; the message is for the admin, in Spanish."""


@dataclass(frozen=True)
class PolicyField:
    key: str
    label: str
    hint: str
    kind: str = "text"  # "text" (paragraphs), "line" (one short line) or "list" (one item per line)


POLICY_FIELDS = (
    PolicyField("requirements", "Requisitos para enviar un paquete",
                "Pon primero lo que todos necesitan saber, deja una línea en blanco y después los detalles."),
    PolicyField("prohibited", "Lo que no se acepta (uno por línea)",
                "El asistente lo dice en una frase, después del primer párrafo de los requisitos.", "list"),
    PolicyField("unclaimed_policy", "Paquetes que nadie retira", "Cuántos días esperan, avisos y qué pasa después."),
    PolicyField("refund", "Reembolsos", "Cómo y dónde se cobra un reembolso."),
    PolicyField("refund_requirement", "Requisito para cobrar un reembolso (una línea)",
                "Se le muestra al remitente cuando rastrea un paquete con reembolso.", "line"),
    PolicyField("payment", "Pagos: quién paga y cómo", "Quién paga el envío y cuándo se paga al retirar."),
    PolicyField("payment_methods", "Formas de pago", "Para preguntas como «¿aceptan tarjeta?»."),
    PolicyField("paid_sender", "Si quien recibe ya le pagó al remitente", "Para «ya le pagué, ¿igual pago?»."),
    PolicyField("pickup_by_other", "Si otra persona retira el paquete",
                "Para «¿puede ir mi esposa?». Después el asistente ofrece un asesor."),
    PolicyField("pickup", "Qué llevar para retirar (una línea)",
                "Se le muestra a quien recibe cuando su paquete ya llegó.", "line"),
)
POLICY_LABELS = {f.key: f.label for f in POLICY_FIELDS}


def checked_entry(question: str, answer: str, keywords: str) -> tuple[str, str, tuple[str, ...]]:
    """The form's question, answer and keywords (separated by commas), cleaned; FaqFormError when unusable."""
    question, answer = question.strip(), answer.strip().replace("\r\n", "\n")
    if not question:
        raise FaqFormError("Escribe la pregunta, como la haría un cliente.")
    if not answer:
        raise FaqFormError("Escribe la respuesta que recibirá el cliente.")
    if len(question) > QUESTION_MAX:
        raise FaqFormError(f"La pregunta es muy larga: máximo {QUESTION_MAX} caracteres.")
    if len(answer) > ANSWER_MAX:
        raise FaqFormError(f"La respuesta es muy larga: máximo {ANSWER_MAX} caracteres. "
                           "Si hace falta más, divídela en dos preguntas.")
    words: list[str] = []
    for raw in keywords.split(","):
        word = " ".join(raw.split())
        if word and fold_words(word) not in {fold_words(w) for w in words}:
            words.append(word)
    if any(len(w) > KEYWORD_MAX for w in words):
        raise FaqFormError(f"Cada palabra clave puede tener hasta {KEYWORD_MAX} caracteres; sepáralas con comas.")
    if len(words) > KEYWORDS_MAX:
        raise FaqFormError(f"Son muchas palabras clave: máximo {KEYWORDS_MAX} por pregunta.")
    return " ".join(question.split()), answer, tuple(words)


def add_entry(data: FaqData, question: str, answer: str, keywords: str) -> FaqData:
    question, answer, words = checked_entry(question, answer, keywords)
    if any(fold_words(e.question) == fold_words(question) for e in data.entries):
        raise FaqFormError("Ya hay una pregunta igual: edítala en vez de agregar otra.")
    entry = FaqEntry(_new_id(data, question), question, answer, words)
    return replace(data, entries=(*data.entries, entry))


def edit_entry(data: FaqData, entry_id: str, question: str, answer: str, keywords: str) -> FaqData:
    """KeyError when the company has no entry `entry_id`."""
    index = _index(data, entry_id)
    question, answer, words = checked_entry(question, answer, keywords)
    if any(fold_words(e.question) == fold_words(question) for e in data.entries if e.id != entry_id):
        raise FaqFormError("Ya hay otra pregunta igual a esta.")
    entries = list(data.entries)
    entries[index] = FaqEntry(entry_id, question, answer, words)
    return replace(data, entries=tuple(entries))


def delete_entry(data: FaqData, entry_id: str) -> FaqData:
    """KeyError when the company has no entry `entry_id`."""
    index = _index(data, entry_id)
    return replace(data, entries=data.entries[:index] + data.entries[index + 1:])


def entry(data: FaqData, entry_id: str) -> FaqEntry:
    return data.entries[_index(data, entry_id)]


def set_policies(data: FaqData, form: dict[str, str]) -> FaqData:
    """The policies as the form has them (an empty text removes its topic); unknown topics are kept."""
    policies = dict(data.policies)
    for field in POLICY_FIELDS:
        if field.key not in form:
            continue
        raw = form[field.key].replace("\r\n", "\n").strip()
        if field.kind == "list":
            items = [" ".join(line.lstrip("-•* ").split()) for line in raw.split("\n")]
            value: str | list[str] = [item for item in items if item]
            too_long = any(len(item) > LINE_MAX for item in value)
        elif field.kind == "line":
            value = " ".join(raw.split())
            too_long = len(value) > LINE_MAX
        else:
            value = raw
            too_long = len(value) > POLICY_MAX
        if too_long:
            limit = POLICY_MAX if field.kind == "text" else LINE_MAX
            raise FaqFormError(f"El texto de «{field.label}» es muy largo: máximo {limit} caracteres.")
        if value:
            policies[field.key] = value
        else:
            policies.pop(field.key, None)
    return replace(data, policies=policies)


def policy_value(data: FaqData, key: str) -> str:
    """A topic's text as the form shows it (a list one item per line)."""
    value = data.policies.get(key)
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    return str(value) if value else ""


def _index(data: FaqData, entry_id: str) -> int:
    for index, found in enumerate(data.entries):
        if found.id == entry_id:
            return index
    raise KeyError(entry_id)


def _new_id(data: FaqData, question: str) -> str:
    """"¿Entregan a domicilio?" -> "entregan_a_domicilio" (a number added when taken)."""
    base = _ID_CHARS.sub("_", fold_words(question)).strip("_")[:40].rstrip("_") or "pregunta"
    taken = {e.id for e in data.entries}
    found, n = base, 2
    while found in taken:
        found, n = f"{base}_{n}", n + 1
    return found
