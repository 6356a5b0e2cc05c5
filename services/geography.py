"""The geography of El Salvador: the places customers name, their pricing zone and our nearest point.

The data is faq_data/geography_sv.yaml (editable by the company, Spanish header): the 14 departments,
the 44 municipalities of the 2024 reorganisation and their 262 districts (the former municipalities,
still the names people use), with aliases ("Gotera", "Chalate", "Nueva San Salvador"), each district's
approximate town centre and its zone. It is read and validated once per process (`geography()`); a
file that breaks the rules raises `GeographyDataError` naming the place, so a bad edit stops start-up
instead of answering wrongly.

Every place has a stable key: "dep:usulutan", "mun:morazan_sur", "dis:apopa"; a district name that
two departments share carries its department ("dis:san_isidro_cabanas").

Zones map onto the core's price table (design 3.3.4; sandbox_core/pricing.py):
  san_salvador   the department of San Salvador: both ends there -> `within_san_salvador`
  departamentos  any other department -> `other_departments`
  rural          `other_departments` plus the core's published rural surcharge note, and the core's
                 `rural` delivery time
Packages are dropped off and picked up at service points, so a place without a point is served by
its nearest point: the distance is a straight line between town centres (haversine), rounded.

Pure functions (no I/O besides reading the file once), so the router may use them too:
  resolve(text) -> Resolution           a place named in free text: one, the options, or none
  locality(key) -> Locality | None      a place by its key
  point_in(points, place) -> ServicePoint | None        a point located in the place itself
  nearest_point(points, place) -> NearestPoint | None   the point closest to the place, with its km
(`points` is the company's list, `catalog.points(ctx)`.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import fuzz, process

from core_api_client import ServicePoint
from services.normalize import normalize

GEOGRAPHY_PATH = Path(__file__).resolve().parents[1] / "faq_data" / "geography_sv.yaml"
DEPARTMENT, MUNICIPALITY, DISTRICT = "department", "municipality", "district"
SAN_SALVADOR_ZONE, DEPARTMENTS_ZONE, RURAL_ZONE = "san_salvador", "departamentos", "rural"
ZONES = (SAN_SALVADOR_ZONE, DEPARTMENTS_ZONE, RURAL_ZONE)
CAPITAL_DEPARTMENT = "San Salvador"
DEPARTMENTS = ("Ahuachapán", "Santa Ana", "Sonsonate", "Chalatenango", "La Libertad", "San Salvador", "Cuscatlán",
               "La Paz", "Cabañas", "San Vicente", "Usulután", "San Miguel", "Morazán", "La Unión")
FUZZY_CUTOFF = 86.0
FUZZY_MIN_CHARS = 5
MAX_NAME_WORDS = 6
EARTH_RADIUS_KM = 6371.0
# El Salvador lies within these bounds: a coordinate outside them is a typo in the file.
LAT_RANGE, LNG_RANGE = (13.0, 14.5), (-90.2, -87.6)


class GeographyDataError(ValueError):
    """faq_data/geography_sv.yaml breaks a rule; the message names the place and the rule."""


@dataclass(frozen=True)
class Locality:
    """A department, municipality or district; coordinates are its (head district's) town centre."""

    key: str
    kind: str  # DEPARTMENT | MUNICIPALITY | DISTRICT
    name: str
    department: str
    municipality: str | None  # None for a department; its own name for a municipality
    lat: float
    lng: float
    zone: str  # one of ZONES
    head: str  # the district whose town stands for the place: itself, or the head district

    @property
    def rural(self) -> bool:
        return self.zone == RURAL_ZONE


@dataclass(frozen=True)
class Geography:
    """The validated data and the lookup tables built from it."""

    localities: dict[str, Locality]
    names: dict[str, tuple[str, ...]]  # normalised name -> keys (more than one: an ambiguous name)
    weak_names: frozenset[str]  # names that count only after a preposition ("en Dolores")
    prepositions: frozenset[str]
    within_markers: tuple[str, ...]  # normalised, longest first ("dentro de")
    fuzzy_names: tuple[str, ...] = field(default=())

    def of_kind(self, kind: str) -> list[Locality]:
        return [place for place in self.localities.values() if place.kind == kind]


@dataclass(frozen=True)
class Resolution:
    """What a text names: one place, or the options of an ambiguous name; `within` for "dentro de X"."""

    place: Locality | None
    options: tuple[Locality, ...] = ()
    within: bool = False


@dataclass(frozen=True)
class NearestPoint:
    point: ServicePoint
    km: int  # straight-line distance, rounded (see `rounded_km`)


def slug(name: str) -> str:
    return normalize(name).replace(" ", "_")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise GeographyDataError(f"{GEOGRAPHY_PATH.name}: {message}")


def _district(raw: dict[str, Any], department: str, municipality: str) -> tuple[Locality, list[str]]:
    name = str(raw.get("nombre") or "")
    _require(bool(name), f"a district of {municipality} has no nombre")
    raw_lat, raw_lng, zone = raw.get("lat"), raw.get("lng"), raw.get("zona")
    _require(isinstance(raw_lat, int | float) and isinstance(raw_lng, int | float),
             f"{name}: lat and lng must be numbers")
    lat, lng = float(raw_lat or 0), float(raw_lng or 0)
    _require(LAT_RANGE[0] <= lat <= LAT_RANGE[1] and LNG_RANGE[0] <= lng <= LNG_RANGE[1],
             f"{name}: lat/lng {lat}, {lng} are outside El Salvador")
    _require(zone in ZONES, f"{name}: zona must be one of {', '.join(ZONES)}, not {zone!r}")
    _require((zone == SAN_SALVADOR_ZONE) == (department == CAPITAL_DEPARTMENT),
             f"{name}: zona san_salvador is for the districts of the department of San Salvador, and only them")
    place = Locality(f"dis:{slug(name)}", DISTRICT, name, department, municipality, lat, lng, str(zone), name)
    return place, [str(alias) for alias in raw.get("alias") or ()]


def _build(data: dict[str, Any]) -> Geography:
    """Validate the file's data and index every name; see the module docstring for the rules."""
    departments = data.get("departamentos") or []
    places: list[tuple[Locality, list[str]]] = []
    for dep in departments:
        dep_name, head = str(dep.get("nombre") or ""), str(dep.get("cabecera") or "")
        _require(dep_name in DEPARTMENTS, f"unknown department {dep_name!r} (the 14 are: {', '.join(DEPARTMENTS)})")
        districts: list[Locality] = []
        for mun in dep.get("municipios") or []:
            mun_name = str(mun.get("nombre") or "")
            _require(bool(mun_name), f"a municipality of {dep_name} has no nombre")
            found = [_district(d, dep_name, mun_name) for d in mun.get("distritos") or []]
            _require(bool(found), f"{mun_name} has no distritos")
            first = found[0][0]
            places.append((Locality(f"mun:{slug(mun_name)}", MUNICIPALITY, mun_name, dep_name, mun_name, first.lat,
                                    first.lng, first.zone, first.name), [str(a) for a in mun.get("alias") or ()]))
            places.extend(found)
            districts.extend(place for place, _ in found)
        capital = next((d for d in districts if d.name == head), None)
        _require(capital is not None, f"{dep_name}: cabecera {head!r} is not one of its districts")
        assert capital is not None  # for mypy: _require raised otherwise
        places.append((Locality(f"dep:{slug(dep_name)}", DEPARTMENT, dep_name, dep_name, None, capital.lat,
                                capital.lng, capital.zone, capital.name), [str(a) for a in dep.get("alias") or ()]))
    missing = set(DEPARTMENTS) - {p.name for p, _ in places if p.kind == DEPARTMENT}
    _require(not missing, f"departments missing: {', '.join(sorted(missing))}")
    return _index(places, data)


def _unique_keys(places: list[tuple[Locality, list[str]]]) -> list[tuple[Locality, list[str]]]:
    """Districts sharing a name in two departments get the department in their key."""
    counts: dict[str, int] = {}
    for place, _ in places:
        counts[place.key] = counts.get(place.key, 0) + 1
    result = []
    for place, aliases in places:
        if counts[place.key] > 1:
            _require(place.kind == DISTRICT, f"two places are called {place.name!r}")
            place = Locality(f"{place.key}_{slug(place.department)}", place.kind, place.name, place.department,
                             place.municipality, place.lat, place.lng, place.zone, place.head)
        result.append((place, aliases))
    return result


def _index(places: list[tuple[Locality, list[str]]], data: dict[str, Any]) -> Geography:
    places = _unique_keys(places)
    localities = {place.key: place for place, _ in places}
    _require(len(localities) == len(places), "two places have the same key")
    official: dict[str, set[str]] = {}
    declared: dict[str, set[str]] = {}
    for place, aliases in places:
        official.setdefault(normalize(place.name), set()).add(place.key)
        for alias in aliases:
            declared.setdefault(normalize(alias), set()).add(place.key)
    names: dict[str, tuple[str, ...]] = {}
    for name in set(official) | set(declared):
        _require(bool(name), "an empty name or alias")
        keys = _prefer_departments(official.get(name, set()) | declared.get(name, set()), localities)
        # two places with the same official name are truly ambiguous (asked); an alias must name one place
        _require(len(keys) == 1 or name not in declared,
                 f"the alias {name!r} names {len(keys)} places: {', '.join(sorted(keys))}")
        names[name] = tuple(sorted(keys))
    weak = frozenset(normalize(str(w)) for w in data.get("solo_con_preposicion") or ())
    unknown = sorted(weak - set(names))
    _require(not unknown, f"solo_con_preposicion: {', '.join(unknown)} is not the name of a place")
    markers = sorted((normalize(str(m)) for m in data.get("dentro_de") or ()), key=len, reverse=True)
    fuzzy = tuple(n for n in names if len(n) >= FUZZY_MIN_CHARS and n not in weak)
    prepositions = frozenset(normalize(str(p)) for p in data.get("preposiciones") or ())
    return Geography(localities, names, weak, prepositions, tuple(markers), fuzzy)


def _prefer_departments(keys: set[str], localities: dict[str, Locality]) -> set[str]:
    """A department wins over its own municipalities and districts of the same name ("Usulután"), a
    municipality over its own districts."""
    departments = {localities[k].department for k in keys if localities[k].kind == DEPARTMENT}
    kept = {k for k in keys if localities[k].kind == DEPARTMENT or localities[k].department not in departments}
    municipalities = {localities[k].name for k in kept if localities[k].kind == MUNICIPALITY}
    return {k for k in kept if localities[k].kind != DISTRICT or localities[k].municipality not in municipalities}


def load(path: Path = GEOGRAPHY_PATH) -> Geography:
    """Read and validate a geography file (raises GeographyDataError, naming what is wrong)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GeographyDataError(f"{path.name}: cannot be read ({exc})") from None
    _require(isinstance(data, dict), "the file must be a mapping with `departamentos`")
    return _build(data)


@cache
def geography() -> Geography:
    """faq_data/geography_sv.yaml, validated, once per process."""
    return load()


def locality(key: str | None) -> Locality | None:
    return geography().localities.get(key) if key else None


def _places_of(keys: Iterable[str]) -> tuple[Locality, ...]:
    geo = geography()
    return tuple(geo.localities[k] for k in keys)


def _result(keys: tuple[str, ...], within: bool) -> Resolution:
    places = _places_of(keys)
    return Resolution(places[0], (), within) if len(places) == 1 else Resolution(None, places, within)


@lru_cache(maxsize=4096)
def _fuzzy(phrase: str) -> str | None:
    best = process.extractOne(phrase, geography().fuzzy_names, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
    return None if best is None else str(best[0])


def resolve(text: str | None, *, whole: bool = False) -> Resolution:
    """The place a text names: its key, the whole text as a name, else the last place named inside it, else
    a misspelling of one ("usulatan"). An ambiguous name ("San Isidro") gives its options, never a
    guess. "dentro de San Salvador" sets `within`: the shipment starts and ends there. With `whole`,
    the text (after "dentro de") must be the name or its misspelling: nothing is looked for inside it."""
    geo = geography()
    if text in geo.localities:  # a key ("dis:apopa"), as the router and the dialog pass it
        return Resolution(geo.localities[text])
    words = normalize(text or "").split()
    within = False
    for marker in geo.within_markers:
        size = len(marker.split())
        for i in range(len(words) - size + 1):
            if words[i:i + size] == marker.split():
                within, words = True, words[i + size:]
                break
        if within:
            break
    phrase = " ".join(words)
    if phrase in geo.names:
        return _result(geo.names[phrase], within)
    if whole:
        misspelt = _fuzzy(phrase) if len(phrase) >= FUZZY_MIN_CHARS else None
        return _result(geo.names[misspelt], within) if misspelt else Resolution(None, (), within)
    found: tuple[str, ...] | None = None
    i = 0
    while i < len(words):
        for size in range(min(MAX_NAME_WORDS, len(words) - i), 0, -1):
            name = " ".join(words[i:i + size])
            weak_ok = name not in geo.weak_names or (i > 0 and words[i - 1] in geo.prepositions)
            if name in geo.names and weak_ok:
                found, i = geo.names[name], i + size - 1
                break
        i += 1
    if found is not None:
        return _result(found, within)
    for size in (3, 2, 1):
        for i in range(len(words) - size, -1, -1):
            phrase = " ".join(words[i:i + size])
            misspelt = _fuzzy(phrase) if len(phrase) >= FUZZY_MIN_CHARS else None
            if misspelt is not None:
                return _result(geo.names[misspelt], within)
    return Resolution(None, (), within)


# -- service points ------------------------------------------------------------------------------

def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine) in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def rounded_km(km: float) -> int:
    """How far, the way people say it: to the km under 10 km (at least 1), else to the nearest 5."""
    return max(1, round(km)) if km < 10 else int(5 * round(km / 5))


def points_in(points: Iterable[ServicePoint], place: Locality) -> list[ServicePoint]:
    """The points located in the place's own town (the district, or the head district of a larger place)."""
    wanted = normalize(place.head)
    return [p for p in points if normalize(p.city) == wanted]


def point_in(points: Iterable[ServicePoint], place: Locality) -> ServicePoint | None:
    """The one point located in the place's own town; None when there is none (or several to choose from)."""
    inside = points_in(points, place)
    return inside[0] if len(inside) == 1 else None


def nearest_point(points: Iterable[ServicePoint], place: Locality) -> NearestPoint | None:
    """The company's point closest to the place (points without coordinates are skipped); None if none."""
    located = [p for p in points if p.lat is not None and p.lng is not None]
    if not located:
        return None
    best = min(located, key=lambda p: distance_km(place.lat, place.lng, float(p.lat or 0), float(p.lng or 0)))
    km = distance_km(place.lat, place.lng, float(best.lat or 0), float(best.lng or 0))
    return NearestPoint(best, rounded_km(km))
