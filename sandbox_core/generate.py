"""Generate the second demo company's core data (sandbox_core/data/core_demo2.json).

    python -m sandbox_core.generate            # rewrites sandbox_core/data/core_demo2.json
    python -m sandbox_core.generate --check    # exit 1 when the committed file differs from the output

The file has the schema of core_demo.json (the first company, "Transportes
Express El Salvador") but is another company in every respect a customer sees:
its name, support hours and emergency phone, its service points (other towns:
Mejicanos, Ilopango, Santa Tecla, Sonsonate, Cojutepeque, Zacatecoluca,
Usulután; coordinates from faq_data/geography_sv.yaml), its prices, delivery
times and policies, and its packages and customers. Zone names and statuses
are the ones the product reads (`within_san_salvador`, `other_departments`,
`rural`; RECEIVED_AT_ORIGIN ... DELIVERED).

Customers and packages are drawn with a seeded random generator, so the output
is the same on every run. Tracking codes keep the format the bot recognises
("SV" + date + 6 digits) with serials 500000-599999, a range the first company
does not use; phone numbers never repeat the first company's, except
SHARED_PHONE (+50370000001, the simulator's default number): that person has
packages at both companies, which shows that each company's bot sees only its
own. A collision the generator did not intend raises ValueError.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox_core.state import DEFAULT_DATA_PATH, load_data

OUTPUT_PATH = DEFAULT_DATA_PATH.parent / "core_demo2.json"
SEED = 20260115
SHARED_PHONE = "+50370000001"
SHARED_NAME = "Juan Pérez"
SERIALS = range(500_000, 600_000)  # the first company's serials are all below 100000
OFFSET = "-06:00"  # America/El_Salvador has no daylight saving time

COMPANY: dict[str, Any] = {
    "name": "Envíos Rápidos Cuscatlán",
    "timezone": "America/El_Salvador",
    "support_hours": {"mon-fri": ["07:30", "17:30"], "sat": ["08:00", "12:00"], "sun": None},
    "emergency_phone": "+503 2347-1100",
}

_WEEKDAYS = {"mon-fri": ["07:30", "17:30"], "sat": ["08:00", "12:00"], "sun": None}
_SMALL_TOWN = {"mon-fri": ["08:00", "17:00"], "sat": ["08:00", "12:00"], "sun": None}
# (id, name, city, department, address, reference, phone, lat, lng, hours)
_POINTS: list[tuple[str, str, str, str, str, str, str, float, float, dict[str, Any]]] = [
    ("mejicanos", "Mejicanos - Punto Zacamil", "Mejicanos", "San Salvador",
     "Calle Principal a Zacamil #112, Col. Zacamil", "Frente al mercado de Zacamil",
     "2272-4180", 13.7402, -89.2131, _WEEKDAYS),
    ("ilopango", "Ilopango - Punto Santa Lucía", "Ilopango", "San Salvador",
     "Blvd. San Bartolo, local 7, Col. Santa Lucía", "A la par de la Alcaldía de Ilopango",
     "2295-3310", 13.7018, -89.1093, _WEEKDAYS),
    ("santa_tecla", "Santa Tecla - Punto Paseo El Carmen", "Santa Tecla", "La Libertad",
     "1ª Av. Norte y 4ª Calle Oriente #21", "A media cuadra del Paseo El Carmen",
     "2228-6045", 13.6769, -89.2797, _WEEKDAYS),
    ("sonsonate", "Sonsonate - Punto Centro", "Sonsonate", "Sonsonate",
     "Calle Obispo Marroquín #8-2", "Frente a la Catedral de Sonsonate",
     "2451-0937", 13.7189, -89.7242, _SMALL_TOWN),
    ("cojutepeque", "Cojutepeque - Punto Cerro de las Pavas", "Cojutepeque", "Cuscatlán",
     "Av. José María Rivas #15, Barrio El Centro", "Cerca del Parque Rafael Cabrera",
     "2372-1508", 13.7167, -88.9333, _SMALL_TOWN),
    ("zacatecoluca", "Zacatecoluca - Punto La Paz", "Zacatecoluca", "La Paz",
     "2ª Calle Poniente #14, Barrio El Centro", "Contiguo al Parque Central de Zacatecoluca",
     "2334-2276", 13.5000, -88.8670, _SMALL_TOWN),
    ("usulutan", "Usulután - Punto Principal", "Usulután", "Usulután",
     "4ª Calle Oriente #9, Barrio La Parroquia", "Una cuadra al oriente de la Catedral",
     "2624-5813", 13.3500, -88.4500, _SMALL_TOWN),
]

PRICING: dict[str, Any] = {
    "currency": "USD",
    "note": "Rural zones add $3-6.",
    "zones": {
        "within_san_salvador": [
            {"max_lbs": 3, "price": 2.75},
            {"max_lbs": 10, "price": 4.5},
            {"max_lbs": 25, "price": 7.25},
            {"max_lbs": None, "price": 11.0},
        ],
        "other_departments": [
            {"max_lbs": 3, "price": 4.25},
            {"max_lbs": 10, "price": 7.5},
            {"max_lbs": 25, "price": 11.75},
            {"max_lbs": None, "price": 17.5},
        ],
    },
}

DELIVERY_TIMES: dict[str, str] = {
    "within_san_salvador": "Día siguiente hábil (si se envía antes de las 3pm)",
    "La Libertad": "Día siguiente hábil",
    "Cuscatlán": "1 día hábil",
    "La Paz": "1-2 días hábiles",
    "Sonsonate": "2 días hábiles",
    "Usulután": "2 días hábiles",
    "rural": "3-4 días hábiles",
}

POLICIES: dict[str, Any] = {
    "unclaimed_days": 10,
    "unclaimed_reminder_days": [2, 5, 9],
    "shipping_paid_by": "sender when sending, or recipient on pickup (cobro al destino)",
    "refund_requirement": "DUI del remitente y la guía original, en cualquier punto de la empresa",
    "prohibited": [
        "Dinero en efectivo o títulos valores",
        "Armas, municiones o explosivos",
        "Pólvora y productos pirotécnicos",
        "Alimentos perecederos sin empaque sellado",
        "Baterías de litio sueltas",
        "Animales vivos o plantas",
    ],
}

_FIRST_NAMES = ["Karla", "Mauricio", "Gabriela", "Óscar", "Fátima", "Walter", "Xiomara", "Nelson",
                "Yesenia", "René", "Marisol", "Edwin", "Jacqueline", "Salvador", "Brenda", "Tomás",
                "Claudia", "Héctor", "Daysi", "Wilfredo"]
_SURNAMES = ["Alvarado", "Quintanilla", "Menjívar", "Portillo", "Rivas", "Guardado", "Escobar",
             "Aguilar", "Orellana", "Henríquez", "Chicas", "Villalta", "Mejía", "Zelaya"]

# One line per package: (status, shared customer's role or None, cash to collect, refund status or None).
_PLAN: list[tuple[str, str | None, float, str | None]] = [
    ("IN_TRANSIT", "sender", 0.0, None),
    ("ARRIVED_AT_DESTINATION", "recipient", 27.5, None),
    ("DELIVERED", "sender", 45.0, "AVAILABLE"),
    ("ARRIVED_AT_DESTINATION", None, 0.0, None),
    ("RECEIVED_AT_ORIGIN", None, 0.0, None),
    ("ARRIVED_AT_DESTINATION", None, 18.0, None),
    ("DELIVERED", None, 0.0, None),
    ("RETURNED_TO_SENDER", None, 0.0, None),
    ("IN_TRANSIT", None, 32.0, None),
]


def _points() -> list[dict[str, Any]]:
    return [
        {"id": pid, "name": name, "city": city, "department": department, "address": address,
         "reference": reference, "phone": phone, "lat": lat, "lng": lng, "hours": hours}
        for pid, name, city, department, address, reference, phone, lat, lng, hours in _POINTS
    ]


def _customers(rng: random.Random, taken_phones: set[str], count: int) -> list[dict[str, str]]:
    """`count` people with distinct names and mobile numbers, none of them in `taken_phones`."""
    names = [f"{first} {rng.choice(_SURNAMES)}" for first in rng.sample(_FIRST_NAMES, count)]
    phones: list[str] = []
    while len(phones) < count:
        phone = f"+503{rng.choice('67')}{rng.randrange(1_000_000, 10_000_000)}"
        if phone not in taken_phones and phone not in phones:
            phones.append(phone)
    return [{"name": name, "phone": phone} for name, phone in zip(names, phones, strict=True)]


def _working_time(at: datetime, rng: random.Random) -> datetime:
    """`at`, or the next opening of the points (08:00-17:00, Monday to Saturday) when they are closed."""
    if at.hour >= 17:
        at = (at + timedelta(days=1)).replace(hour=8, minute=rng.choice((5, 20, 35, 50)))
    elif at.hour < 8:
        at = at.replace(hour=8, minute=rng.choice((5, 20, 35, 50)))
    if at.weekday() == 6:  # Sunday
        at = (at + timedelta(days=1)).replace(hour=8, minute=rng.choice((5, 20, 35, 50)))
    return at


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:00") + OFFSET


def _history(status: str, origin: dict[str, Any], destination: dict[str, Any], start: datetime,
             rng: random.Random) -> tuple[list[dict[str, Any]], str | None]:
    """The package's steps up to `status`, and its ETA while still on the way."""
    steps = [(start, "RECEIVED_AT_ORIGIN", origin["id"], f"Recibido en {origin['city']}")]
    at = start
    path = {
        "RECEIVED_AT_ORIGIN": [],
        "IN_TRANSIT": ["IN_TRANSIT"],
        "ARRIVED_AT_DESTINATION": ["IN_TRANSIT", "ARRIVED_AT_DESTINATION"],
        "DELIVERED": ["IN_TRANSIT", "ARRIVED_AT_DESTINATION", "DELIVERED"],
        "RETURNED_TO_SENDER": ["IN_TRANSIT", "ARRIVED_AT_DESTINATION", "RETURNED_TO_SENDER"],
    }[status]
    notes = {
        "IN_TRANSIT": (None, f"En tránsito hacia {destination['city']}"),
        "ARRIVED_AT_DESTINATION": (destination["id"], f"Listo para retirar en {destination['city']}"),
        "DELIVERED": (destination["id"], "Retirado por el destinatario"),
        "RETURNED_TO_SENDER": (origin["id"], f"No fue retirado: devuelto al remitente en {origin['city']}"),
    }
    for step in path:
        at = _working_time(at + timedelta(hours=rng.randrange(2, 9), minutes=rng.choice((0, 15, 30, 45))), rng)
        point, note = notes[step]
        steps.append((at, step, point, note))
    eta = None
    if status in ("RECEIVED_AT_ORIGIN", "IN_TRANSIT"):
        eta = _stamp((at + timedelta(days=rng.randrange(1, 3))).replace(hour=17, minute=0))
    return [{"at": _stamp(s_at), "status": s, "point": p, "note": n} for s_at, s, p, n in steps], eta


def generate(first_company: dict[str, Any]) -> dict[str, Any]:
    """The second company's data; `first_company` is core_demo.json's, to keep phones and codes apart."""
    rng = random.Random(SEED)  # noqa: S311 - demo data, not a secret
    taken = {party["phone"] for p in first_company["packages"] for party in (p["sender"], p["recipient"])}
    first_codes = {p["tracking_code"] for p in first_company["packages"]}
    points = _points()
    people = _customers(rng, taken, 2 * len(_PLAN))
    shared = {"name": SHARED_NAME, "phone": SHARED_PHONE}
    packages: list[dict[str, Any]] = []
    serials = rng.sample(SERIALS, len(_PLAN))
    for index, (status, shared_role, to_collect, refund_status) in enumerate(_PLAN):
        origin, destination = rng.sample(points, 2)
        sender, recipient = people[2 * index], people[2 * index + 1]
        if shared_role == "sender":
            sender = shared
        elif shared_role == "recipient":
            recipient = shared
        opened = datetime(2026, 1, rng.randrange(2, 7), rng.randrange(8, 13), rng.choice((0, 20, 40)))  # noqa: DTZ001 - stamped with OFFSET
        start = _working_time(opened, rng)
        history, eta = _history(status, origin, destination, start, rng)
        code = f"SV{start:%Y%m%d}{serials[index]:06d}"
        refund = (
            {"amount": to_collect, "status": refund_status, "pickup_point": origin["id"]}
            if refund_status else None
        )
        packages.append({
            "tracking_code": code, "status": status, "sender": sender, "recipient": recipient,
            "origin_point": origin["id"], "destination_point": destination["id"],
            "weight_lbs": rng.randrange(1, 36), "amount_to_collect": to_collect, "refund": refund,
            "eta": eta, "history": history,
        })
    _check_apart(packages, taken, first_codes)
    return {"company": COMPANY, "points": points, "pricing": PRICING, "delivery_times": DELIVERY_TIMES,
            "policies": POLICIES, "packages": packages}


def _check_apart(packages: list[dict[str, Any]], first_phones: set[str], first_codes: set[str]) -> None:
    """ValueError unless codes are new and only SHARED_PHONE is a phone of the first company."""
    codes = [p["tracking_code"] for p in packages]
    if len(set(codes)) != len(codes) or set(codes) & first_codes:
        raise ValueError("tracking codes repeat or collide with the first company's")
    phones = {party["phone"] for p in packages for party in (p["sender"], p["recipient"])}
    if phones & first_phones != {SHARED_PHONE}:
        raise ValueError(f"phones shared with the first company: {sorted(phones & first_phones)}")


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file, write nothing")
    parser.add_argument("--output", type=Path, default=OUTPUT_PATH, help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)
    text = render(generate(load_data()))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m sandbox_core.generate", file=sys.stderr)  # noqa: T201
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
