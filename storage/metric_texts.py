"""What each operations figure is called on the pages and in the e-mails, and its tooltip: in one place.

`TEXTS[name]` is (label, tooltip), in the Salvadoran Spanish a company's manager reads; `name` is the
figure's name in docs/METRICS.md (which defines it precisely, in English) and, where it is one, in
storage.metrics.METRICS (what `series` draws). Pages put the tooltip in a `title` (or an element
named by aria-describedby) beside the label.
"""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    # Volume
    "conversations": (
        "Conversaciones",
        "Conversaciones de 24 horas que abrieron tus clientes: la primera vez que alguien escribe, o cuando "
        "escribe 24 horas o más después de empezar la anterior. Cuenta el día en que empezó."),
    "customer_messages": ("Mensajes de clientes", "Mensajes que tus clientes enviaron al número."),
    "unique_customers": (
        "Clientes únicos", "Personas distintas que escribieron en el periodo (cada una cuenta una vez)."),
    "notifications": (
        "Notificaciones enviadas",
        "Avisos de envío que mandamos por iniciativa propia y que WhatsApp aceptó (sin contar los que "
        "fallaron)."),
    # Quality
    "resolution_rate": (
        "Resueltas sin persona",
        "De las conversaciones que empezaron en el periodo, las que el asistente atendió sin pasarlas a una "
        "persona en sus 24 horas. Meta: más del 75 %."),
    "escalation_rate": (
        "Pasadas a una persona",
        "De las conversaciones que empezaron en el periodo, las que terminaron en un caso para tu equipo. "
        "Meta: menos del 20 %."),
    "not_understood_rate": (
        "No entendidos",
        "De los mensajes que respondió el asistente, los que no entendió. Meta: menos del 10 %."),
    "response_p50_s": (
        "Tiempo de respuesta (mediana)",
        "La mitad de las respuestas del asistente salió en este tiempo o menos, desde que llegó el mensaje "
        "hasta que WhatsApp aceptó la respuesta. Meta: menos de 2 segundos."),
    "response_p95_s": (
        "Tiempo de respuesta (95 %)",
        "El 95 % de las respuestas del asistente salió en este tiempo o menos, desde que llegó el mensaje "
        "hasta que WhatsApp aceptó la respuesta. Meta: menos de 2 segundos."),
    "csat_average": (
        "Satisfacción (CSAT)",
        "Promedio de las calificaciones de tus clientes, sobre 10 (una nota de 1 a 5 al asistente cuenta "
        "el doble)."),
    "csat_distribution": (
        "Calificaciones", "Cuántos clientes dieron cada nota: al asistente (de 1 a 5) y a tu equipo (de 1 a 10)."),
    "first_response_in_sla_rate": (
        "Primera respuesta a tiempo",
        "De los casos que tu equipo respondió por primera vez en el periodo, los que respondió dentro del "
        "tiempo acordado (prioridad alta o normal)."),
    "first_response_average_s": (
        "Primera respuesta (promedio)",
        "Tiempo promedio desde que se abre un caso (o desde la hora de la llamada pendiente) hasta el primer "
        "mensaje de una persona de tu equipo."),
    # Intents
    "top_intents": ("Lo que más preguntan", "Los temas de los mensajes que respondió el asistente, de más a menos."),
    "rules_share": (
        "Resueltos por reglas",
        "Mensajes que el asistente entendió con sus reglas (palabras y formatos conocidos), sin usar el modelo "
        "de lenguaje."),
    "llm_share": ("Resueltos con IA", "Mensajes que el asistente entendió con ayuda del modelo de lenguaje."),
    # Cost
    "templates": (
        "Plantillas de WhatsApp",
        "Mensajes de plantilla que WhatsApp aceptó, por categoría. Las de utilidad dentro de las 24 horas "
        "después de que el cliente escribió son gratis."),
    "llm_usd": ("Costo de IA", "Lo que costaron las consultas al modelo de lenguaje, en dólares."),
    "llm_usd_per_conversation": (
        "Costo de IA por conversación", "Costo de IA dividido entre las conversaciones del periodo, en dólares."),
}


def label(name: str) -> str:
    return TEXTS[name][0]


def tooltip(name: str) -> str:
    return TEXTS[name][1]
