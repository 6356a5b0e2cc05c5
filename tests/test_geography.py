"""The geography of El Salvador (faq_data/geography_sv.yaml, services/geography.py) and the
answers built on it: places without a point, quotes and delivery times to any place, on the sandbox core."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from channels.outbound import Buttons, OutboundMessage, preview_text
from chatbot.router import route
from core_api_client import CoreClient
from services import ServiceContext, business, catalog, geography
from storage.dialogs import DialogState
from tests.dialog_support import Say, readable
from tests.services_support import make_ctx

GOOD_FILE = geography.GEOGRAPHY_PATH.read_text(encoding="utf-8")


def read(replies: list[OutboundMessage]) -> str:
    return "\n".join(preview_text(m) for m in replies)


@pytest.fixture
def ctx(core: CoreClient, redis_conn: redis.Redis) -> ServiceContext:
    return make_ctx(core, redis_conn)


# -- the data ------------------------------------------------------------------------------------

def test_the_2024_division_fourteen_departments_44_municipalities_262_districts() -> None:
    geo = geography.geography()
    assert len(geo.of_kind(geography.DEPARTMENT)) == 14
    assert len(geo.of_kind(geography.MUNICIPALITY)) == 44
    assert len(geo.of_kind(geography.DISTRICT)) == 262
    per_department = {d.name: len({x.municipality for x in geo.of_kind(geography.DISTRICT) if x.department == d.name})
                      for d in geo.of_kind(geography.DEPARTMENT)}
    assert per_department == {"Ahuachapán": 3, "Santa Ana": 4, "Sonsonate": 4, "Chalatenango": 3, "La Libertad": 6,
                              "San Salvador": 5, "Cuscatlán": 2, "La Paz": 3, "Cabañas": 2, "San Vicente": 2,
                              "Usulután": 3, "San Miguel": 3, "Morazán": 2, "La Unión": 2}


@pytest.mark.parametrize(("municipality", "districts"), [
    ("San Salvador Centro", {"San Salvador", "Mejicanos", "Ayutuxtepeque", "Cuscatancingo", "Ciudad Delgado"}),
    ("San Salvador Oeste", {"Apopa", "Nejapa"}),
    ("San Salvador Este", {"Soyapango", "Ilopango", "San Martín", "Tonacatepeque"}),
    ("La Libertad Sur", {"Santa Tecla", "Comasagua"}),
    ("Sonsonate Oeste", {"Acajutla"}),
    ("Santa Ana Centro", {"Santa Ana"}),
    ("Usulután Oeste", {"Jiquilisco", "Puerto El Triunfo", "San Agustín", "San Francisco Javier"}),
    ("La Paz Este", {"Zacatecoluca", "San Juan Nonualco", "San Rafael Obrajuelo"}),
    ("Chalatenango Norte", {"La Palma", "Citalá", "San Ignacio"}),
])
def test_municipalities_group_their_former_municipalities(municipality: str, districts: set[str]) -> None:
    found = {d.name for d in geography.geography().of_kind(geography.DISTRICT) if d.municipality == municipality}
    assert found == districts


def test_morazan_and_la_union_are_split_north_and_south() -> None:
    districts = geography.geography().of_kind(geography.DISTRICT)
    assert sum(d.municipality == "Morazán Norte" for d in districts) == 11
    assert sum(d.municipality == "Morazán Sur" for d in districts) == 15
    assert sum(d.municipality == "La Unión Norte" for d in districts) == 10
    assert sum(d.municipality == "La Unión Sur" for d in districts) == 8


def test_zones_follow_the_cores_rule_the_department_of_san_salvador() -> None:
    for district in geography.geography().of_kind(geography.DISTRICT):
        assert (district.zone == geography.SAN_SALVADOR_ZONE) == (district.department == "San Salvador"), district


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    assert old in GOOD_FILE
    path = tmp_path / "geo.yaml"
    path.write_text(GOOD_FILE.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ("{nombre: Apopa, lat: 13.807, lng: -89.179, zona: san_salvador}",
     "{nombre: Apopa, lat: 13.807, lng: -89.179, zona: metro}", "Apopa: zona must be one of"),
    ("{nombre: Apopa, lat: 13.807, lng: -89.179, zona: san_salvador}",
     "{nombre: Apopa, lat: 13.807, lng: -89.179, zona: departamentos}", "Apopa: zona san_salvador"),
    ("{nombre: Apopa, lat: 13.807, lng: -89.179,", "{nombre: Apopa, lat: 31.807, lng: -89.179,",
     "outside El Salvador"),
    ("cabecera: Cojutepeque", "cabecera: Cojute", "cabecera 'Cojute' is not one of its districts"),
    ("alias: [gotera,", "alias: [apopa, gotera,", "the alias 'apopa' names 2 places"),
    ("verapaz, tecla,", "verapaz, teclo,", "solo_con_preposicion: teclo is not the name of a place"),
    ("  - nombre: Cabañas\n", "  - nombre: Cabana\n", "unknown department 'Cabana'"),
    ("  - nombre: Cabañas\n    cabecera: Sensuntepeque\n", "  - nombre: Santa Ana\n    cabecera: Sensuntepeque\n",
     "departments missing: Cabañas"),
])
def test_a_bad_edit_of_the_file_is_refused_naming_the_place(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(geography.GeographyDataError, match=message.replace("(", r"\(")):
        geography.load(_broken(tmp_path, old, new))


def test_two_districts_with_one_official_name_stay_ambiguous(tmp_path: Path) -> None:
    geo = geography.load(_broken(tmp_path, "{nombre: Tejutla,", "{nombre: Tejutla, alias: [la montana],"))
    assert geo.names["san isidro"] == ("dis:san_isidro_cabanas", "dis:san_isidro_morazan")
    assert geo.names["la montana"] == ("dis:tejutla",)


# -- resolving what customers write ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "key"), [
    ("Gotera", "dis:san_francisco_gotera"),
    ("vivo en San Fco Gotera", "dis:san_francisco_gotera"),
    ("chalate", "dep:chalatenango"),
    ("Santa Tecla", "dis:santa_tecla"),
    ("Nueva San Salvador", "dis:santa_tecla"),
    ("apopa", "dis:apopa"),
    ("usulutan", "dep:usulutan"),
    ("¿tienen sucursal en Usulután?", "dep:usulutan"),
    ("Zacate", "dis:zacatecoluca"),
    ("soya", "dis:soyapango"),
    ("Morazán Norte", "mun:morazan_norte"),
    ("la union sur", "mun:la_union_sur"),
    ("puerto de La Libertad", "dis:la_libertad"),
    ("La Libertad", "dep:la_libertad"),
    ("dis:apopa", "dis:apopa"),
    # misspellings
    ("ahuchapan", "dep:ahuachapan"),
    ("usulatan", "dep:usulutan"),
    ("sonzonate", "dep:sonsonate"),
    ("quezaltepque", "dis:quezaltepeque"),
    ("para chalatenago", "dep:chalatenango"),
    ("cojutepeqe", "dis:cojutepeque"),
])
def test_resolve_names_aliases_and_misspellings(text: str, key: str) -> None:
    found = geography.resolve(text)
    assert found.place is not None and found.place.key == key


def test_an_ambiguous_name_gives_its_options_not_a_guess() -> None:
    found = geography.resolve("San Isidro")
    assert found.place is None
    assert [(p.name, p.department) for p in found.options] == [("San Isidro", "Cabañas"), ("San Isidro", "Morazán")]
    assert len(geography.resolve("El Rosario").options) == 3


@pytest.mark.parametrize("text", ["a nombre de Carolina", "tengo dolores de cabeza", "hola", "cuánto cuesta", ""])
def test_ordinary_words_and_names_are_not_places(text: str) -> None:
    assert geography.resolve(text) == geography.Resolution(None)


def test_a_common_word_is_a_place_after_a_preposition() -> None:
    found = geography.resolve("vivo en Dolores")
    assert found.place is not None and (found.place.name, found.place.department) == ("Dolores", "Cabañas")


def test_dentro_de_means_both_ends_in_the_place() -> None:
    found = geography.resolve("¿y dentro de San Salvador?")
    assert found.within and found.place is not None and found.place.key == "dep:san_salvador"


# -- the router's `place` entity --------------------------------------------------------------------

@pytest.mark.parametrize(("text", "intent", "entities"), [
    ("¿tienen sucursal en Usulután?", "locations", {"place": "dep:usulutan"}),
    ("vivo en Gotera", "locations", {"place": "dis:san_francisco_gotera"}),
    ("Chalate", "locations", {"place": "dep:chalatenango"}),
    ("¿cuánto cuesta enviar a Apopa 3 libras?", "pricing", {"place": "dis:apopa", "weight_lbs": 3.0}),
    ("de Santa Ana a Apopa", "locations", {"place": "dis:apopa"}),  # the destination counts
    ("de Apopa a Santa Ana", "locations", {"point": "santa_ana"}),
    ("cuantos dias tarda en llegar a Metapan", "delivery_time", {"place": "dis:metapan"}),
    ("¿cuánto cuesta a San Isidro?", "pricing",
     {"place_options": ["dis:san_isidro_cabanas", "dis:san_isidro_morazan"]}),
    ("¿y dentro de San Salvador 3 lb?", "pricing", {"place": "dep:san_salvador", "within": True, "weight_lbs": 3.0,
                                                   "point_options": ["san_salvador_centro", "soyapango"]}),
])
def test_router_names_places_that_are_not_points(text: str, intent: str, entities: dict[str, object]) -> None:
    result = route(text)
    assert (result.intent, {k: result.entities.get(k) for k in entities}) == (intent, entities)
    assert "place" not in entities or "point" not in result.entities


@pytest.mark.parametrize(("text", "point"), [
    ("¿dónde queda Soyapango?", "soyapango"), ("horario de Santa Ana", "santa_ana"), ("punto de la union", "la_union"),
])
def test_a_points_city_is_still_a_point(text: str, point: str) -> None:
    result = route(text)
    assert result.entities.get("point") == point and "place" not in result.entities


@pytest.mark.parametrize("text", ["a nombre de Carolina", "Victoria Pérez", "tengo dolores de cabeza",
                                  "a nombre de Lourdes", "Juan Delgado", "déjenme en paz", "no en Apopa",
                                  "hola buenas"])
def test_people_and_ordinary_words_are_not_places(text: str) -> None:
    assert not {"place", "place_options", "within"} & set(route(text).entities)


# -- nearest point ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "point_id", "km"), [
    ("dep:usulutan", "san_miguel", 30),
    ("dis:san_francisco_gotera", "san_miguel", 25),
    ("dep:chalatenango", "soyapango", 45),
    ("dis:santa_tecla", "san_salvador_centro", 10),
    ("dep:ahuachapan", "santa_ana", 30),
    ("dis:metapan", "santa_ana", 40),
    ("dis:santa_rosa_de_lima", "la_union", 30),
])
def test_nearest_point_and_distance(ctx: ServiceContext, key: str, point_id: str, km: int) -> None:
    place = geography.locality(key)
    assert place is not None
    nearest = geography.nearest_point(catalog.points(ctx), place)
    assert nearest is not None and (nearest.point.id, nearest.km) == (point_id, km)


def test_distance_is_haversine_and_rounded_as_people_say_it() -> None:
    assert round(geography.distance_km(13.6989, -89.1914, 13.4833, -88.1833)) == 112
    assert [geography.rounded_km(k) for k in (0.2, 3.4, 9.6, 12.4, 27.6, 111.0)] == [1, 3, 10, 10, 30, 110]


# -- answers -------------------------------------------------------------------------------------------

def test_a_department_without_a_point_gets_the_nearest_with_distance_and_hours(ctx: ServiceContext) -> None:
    [message] = business.place_answer(ctx, "dep:usulutan")
    assert isinstance(message, Buttons)
    assert message.body.startswith(
        "No tenemos punto en *Usulután* 😕 El más cercano es *San Miguel - Punto Principal*, a unos 30 km:\n"
        "📍 Av. Roosevelt Sur #23 (Frente a Metrocentro)\n"
        "⏰ Abre lunes a viernes de 8:00am a 6:00pm y sábado de 8:00am a 1:00pm.\n📞 2661-4455")
    assert [b.id for b in message.buttons] == ["pin:san_miguel", "pin_no"]


def test_gotera_is_served_by_san_miguel(ctx: ServiceContext) -> None:
    text = read(business.place_answer(ctx, "dis:san_francisco_gotera"))
    assert "No tenemos punto en *San Francisco Gotera*" in text and "a unos 25 km" in text


def test_a_place_with_its_own_point_gets_that_point(ctx: ServiceContext) -> None:
    assert read(business.place_answer(ctx, "dis:soyapango")) == read(business.location_answer(ctx, "soyapango"))
    assert read(business.place_answer(ctx, "dep:santa_ana")) == read(business.location_answer(ctx, "santa_ana"))


def test_an_ambiguous_place_is_asked_with_one_button_per_department() -> None:
    [message] = business.place_options_answer(["dis:san_isidro_cabanas", "dis:san_isidro_morazan"])
    assert isinstance(message, Buttons)
    assert message.body == "Hay más de un lugar llamado *San Isidro* 🤔 ¿En qué departamento?"
    assert [(b.id, b.title) for b in message.buttons] == [("place:dis:san_isidro_cabanas", "Cabañas"),
                                                          ("place:dis:san_isidro_morazan", "Morazán")]


def test_quote_to_a_district_of_san_salvador_is_within_san_salvador(ctx: ServiceContext) -> None:
    answer = business.pricing_answer(ctx, "Apopa", 3)
    text = read(answer.replies)
    assert answer.missing is None
    assert "📍 San Salvador → Apopa" in text and "*Costo de envío: $3.00*" in text
    assert "Mismo día" in text


def test_quote_to_a_place_without_point_names_where_it_is_collected(ctx: ServiceContext) -> None:
    text = read(business.pricing_answer(ctx, "Gotera", 10).replies)
    assert "📍 San Salvador → San Francisco Gotera" in text and "*Costo de envío: $8.00*" in text
    assert "📦 En San Francisco Gotera no tenemos punto: lo recogen en *San Miguel - Punto Principal*, a unos 25 km." \
        in text
    assert "⏱️ Tiempo de entrega: 2-3 días hábiles" in text  # Morazán has no published time: the core's rural one


def test_quote_from_a_place_without_point_says_where_to_drop_it_off(ctx: ServiceContext) -> None:
    text = read(business.pricing_answer(ctx, "San Miguel", 3, origin="Usulután").replies)
    assert "📍 Usulután → San Miguel" in text and "$5.00" in text
    assert "📦 En Usulután no tenemos punto: lo dejas en *San Miguel - Punto Principal*, a unos 30 km." in text


def test_quote_to_chalate_uses_other_departments(ctx: ServiceContext) -> None:
    text = read(business.pricing_answer(ctx, "Chalate", 3).replies)
    assert "📍 San Salvador → Chalatenango" in text and "*Costo de envío: $5.00*" in text


def test_quote_to_a_rural_place_says_its_surcharge(ctx: ServiceContext) -> None:
    text = read(business.pricing_answer(ctx, "Apaneca", 3).replies)
    assert "*Costo de envío: $5.00*" in text and "Apaneca es zona rural: se suman $2-5 al costo." in text


def test_dentro_de_san_salvador_is_both_ends_in_san_salvador(ctx: ServiceContext) -> None:
    text = read(business.pricing_answer(ctx, "dentro de San Salvador", 3).replies)
    assert "📍 San Salvador → San Salvador" in text and "*Costo de envío: $3.00*" in text
    assert "Lo calculé saliendo desde" not in text


@pytest.mark.parametrize(("place", "expected"), [
    ("Gotera", "⏱️ Tiempo de entrega hacia *San Francisco Gotera*: 2-3 días hábiles.\n"
               "📍 Ahí no tenemos punto: el más cercano es *San Miguel - Punto Principal*, a unos 25 km."),
    ("Usulután", "⏱️ Tiempo de entrega hacia *Usulután*: 1-2 días hábiles.\n"
                 "📍 Ahí no tenemos punto: el más cercano es *San Miguel - Punto Principal*, a unos 30 km."),
    ("chalate", "⏱️ Tiempo de entrega hacia *Chalatenango*: 2-3 días hábiles.\n"
                "📍 Ahí no tenemos punto: el más cercano es *San Salvador - Punto Soyapango*, a unos 45 km."),
    ("Santa Tecla", "⏱️ Tiempo de entrega hacia *Santa Tecla*: 1 día hábil.\n"
                    "📍 Ahí no tenemos punto: el más cercano es *San Salvador - Punto Centro*, a unos 10 km."),
    ("Masahuat", "⏱️ Tiempo de entrega hacia *Masahuat*: 2-3 días hábiles.\n"  # rural, in Santa Ana
                 "📍 Ahí no tenemos punto: el más cercano es *Santa Ana - Punto Principal*, a unos 25 km."),
])
def test_delivery_time_to_a_place_and_its_nearest_point(ctx: ServiceContext, place: str, expected: str) -> None:
    [message] = business.delivery_time_answer(ctx, place)
    assert preview_text(message) == expected


def test_delivery_time_within_san_salvador_for_a_district_without_point(ctx: ServiceContext) -> None:
    [message] = business.delivery_time_answer(ctx, "Apopa")
    assert preview_text(message).startswith("⏱️ Tiempo de entrega hacia *Apopa*: Mismo día")


def test_delivery_time_to_a_point_city_is_unchanged(ctx: ServiceContext) -> None:
    [message] = business.delivery_time_answer(ctx, "Santa Ana")
    assert preview_text(message) == "⏱️ Tiempo de entrega hacia *Santa Ana*: 1 día hábil."


# -- through the dialog as it is (router, dialog, services, sandbox core) --------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("¿cuánto cuesta enviar a Apopa 3 libras?", ["San Salvador → Apopa", "$3.00"]),
    ("¿cuánto cuesta enviar a Gotera 5 libras?", ["San Salvador → San Francisco Gotera", "$5.00",
                                                  "lo recogen en *San Miguel - Punto Principal*, a unos 25 km"]),
    ("cuanto sale mandar a chalate 10 libras", ["San Salvador → Chalatenango", "$8.00"]),
])
def test_quotes_to_any_place_through_the_dialog(say: Say, text: str, expected: list[str]) -> None:
    replies = readable(say(DialogState(), text).replies)
    assert all(part in replies for part in expected), replies
