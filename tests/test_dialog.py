"""The dialog manager: its state table and diagram, the session store, the guard, and context use.

Turns run through the real router and the real services, against the sandbox
core (served on loopback) and the test Redis; nothing of the project is faked.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import redis

from channels.outbound import Location
from chatbot import cues, guard
from chatbot.dialog import machine
from chatbot.dialog.turn import State, wording
from chatbot.engine import message_time
from core_api_client import CoreClient
from storage import dialogs
from storage.dialogs import DialogState
from tests.dialog_support import COMPANY, MARIA, ROOT, STRANGER, TUESDAY_10AM, TZ, Say, readable

# -- the table and its diagram -------------------------------------------------------------------


def test_every_state_has_a_handler_and_is_drawn() -> None:
    assert set(machine.TABLE) == set(State)
    diagram = (ROOT / "chatbot" / "dialog" / "machine.mmd").read_text(encoding="utf-8")
    edges = re.findall(r"^\s*(\[\*\]|\w+) --> (\w+)", diagram, flags=re.M)
    drawn = {name for edge in edges for name in edge} - {"[*]"}
    assert drawn == {s.value for s in State}, "machine.mmd must draw exactly the states of chatbot.dialog.turn.State"


@pytest.mark.parametrize(("state", "expecting"), [
    (State.AWAITING_CODE, "tracking_code"), (State.AWAITING_POINT, "point"), (State.AWAITING_WEIGHT, "weight"),
    (State.AWAITING_NAME, "name"), (State.AWAITING_PIN, "yes_no"), (State.AWAITING_HUMAN_CONFIRM, "yes_no"),
    (State.AWAITING_PACKAGE_CHOICE, "option"), (State.IDLE, None),
    (State.AWAITING_NOT_FOUND_CHOICE, "name"),  # after a search by name: another name may be typed
])
def test_the_router_is_told_what_the_bot_asked(state: State, expecting: str | None) -> None:
    ds = DialogState(state=state.value, last_intent="pricing")
    context = machine.context_for(ds)
    assert (context.expecting, context.last_intent) == (expecting, "pricing")
    ds = DialogState(options=["menu_track", "menu_points"], option_titles=["Rastrear", "Puntos"])
    assert machine.context_for(ds).expecting == "option"
    assert machine.context_for(ds).options == ("menu_track", "menu_points")


# -- the session store -------------------------------------------------------------------------------


def test_store_keeps_the_session_for_24_hours(redis_conn: redis.Redis) -> None:
    ds = DialogState(conversation_id=7, state=State.AWAITING_WEIGHT.value, pricing={"destination": "santa_ana"})
    ds.remember_package("SV20260106012345")
    assert dialogs.save(redis_conn, "abc123", ds)
    assert 24 * 3600 - 5 <= redis_conn.ttl("dialog:abc123") <= 24 * 3600
    loaded = dialogs.load(redis_conn, "abc123")
    assert loaded == ds
    dialogs.clear(redis_conn, "abc123")
    assert dialogs.load(redis_conn, "abc123") == DialogState()


def test_store_survives_garbage_and_old_versions(redis_conn: redis.Redis) -> None:
    redis_conn.set("dialog:bad", b"\xff not json")
    assert dialogs.load(redis_conn, "bad") == DialogState()
    redis_conn.set("dialog:old", '{"state": "awaiting_weight", "retired_field": 1}')
    assert dialogs.load(redis_conn, "old").state == "awaiting_weight"
    redis_conn.set("dialog:odd", '{"packages": "SV1", "exchanges": "3", "point": 5, "pending": [], "csat_asked": 1,'
                                 ' "options": ["a", 2], "last_intent": "hours"}')
    odd = dialogs.load(redis_conn, "odd")
    assert odd == DialogState(last_intent="hours")  # values of the wrong kind take their defaults


def test_store_never_raises_when_redis_is_down() -> None:
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert dialogs.load(down, "x") == DialogState()
    assert dialogs.save(down, "x", DialogState()) is False


def test_remembered_packages_are_bounded_and_latest_last() -> None:
    ds = DialogState()
    for n in range(15):
        ds.remember_package(f"SV2026010600{n:04d}")
    ds.remember_package("SV20260106000003")
    assert len(ds.packages) == dialogs.MAX_PACKAGES and ds.packages[-1] == "SV20260106000003"


# -- the guard ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "text", "flags"), [
    ("", "", {"empty"}),
    ("   \n\t ", "", {"empty"}),
    ("😀😀😀", "😀😀😀", {"emoji_only"}),
    ("hola\x00\x07\x1b[31m mundo\u200b", "hola[31m mundo", set()),
    ("<script>alert('x')</script><b>hola</b>", "alert('x') hola", {"had_markup"}),
    ("Where is my package? I need it today", "Where is my package? I need it today", {"foreign"}),
    ("¿Dónde está mi paquete?", "¿Dónde está mi paquete?", set()),
])
def test_clean_text(raw: str, text: str, flags: set[str]) -> None:
    cleaned = guard.clean(raw)
    assert cleaned.text == text
    seen = {f for f in ("empty", "emoji_only", "truncated", "had_markup", "foreign") if getattr(cleaned, f)}
    assert seen == flags


def test_very_long_text_is_cut_for_the_router() -> None:
    cleaned = guard.clean("hola " * 1000)
    assert cleaned.truncated and len(cleaned.text) <= guard.ROUTED_MAX_CHARS


@pytest.mark.parametrize(("raw", "name"), [
    ("María López", "María López"), ("<b>Ana</b>", "Ana"), ("O'Neil  Smith-Paz.", "O'Neil Smith-Paz"),
    ("'; DROP TABLE x; --", "DROP TABLE x"), ("1234", None), ("😀", None), ("a" * 61, None),
    ("mi nombre es Juan Pérez", "mi nombre es Juan Pérez"),  # only cleaned: the router reads which words are the name
])
def test_names_repeated_back_are_plain_words(raw: str, name: str | None) -> None:
    assert guard.safe_name(raw) == name


@pytest.mark.parametrize(("raw", "phone"), [
    ("7000-0002", "+50370000002"), ("mi número es 503 7000 0002", "+50370000002"),
    ("SV20260106012345", None), ("12", None),
])
def test_phone_in_text(raw: str, phone: str | None) -> None:
    assert guard.phone_in(raw) == phone


def test_rate_limit_tells_once_then_stays_quiet(redis_conn: redis.Redis) -> None:
    limits = guard.RateLimits(per_minute=3, per_hour=100, per_day=500)
    decisions = [guard.check_rate(redis_conn, "h", f"m{i}", 1000.0 + i, limits) for i in range(6)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False]
    assert [d.notify for d in decisions[3:]] == [True, False, False]
    assert decisions[3].window == "minute"
    guard.check_rate(redis_conn, "h", "m2", 1002.0, limits)  # a retried job counts its message once
    assert redis_conn.zcard("guard:h:minute") == 6
    later = guard.check_rate(redis_conn, "h", "m9", 1200.0, limits)
    assert later.allowed and not later.notify


def test_hour_and_day_limits(redis_conn: redis.Redis) -> None:
    limits = guard.RateLimits(per_minute=50, per_hour=4, per_day=6)
    hourly = [guard.check_rate(redis_conn, "h2", f"a{i}", 1000.0 + i * 61, limits) for i in range(5)]
    assert [d.allowed for d in hourly] == [True] * 4 + [False] and hourly[-1].window == "hour"
    daily = [guard.check_rate(redis_conn, "h2", f"b{i}", 10_000.0 + i * 3700, limits) for i in range(3)]
    assert daily[-1].window == "day" and not daily[-1].allowed


def test_repeats_are_counted_in_a_row(redis_conn: redis.Redis) -> None:
    counts = [guard.count_repeats(redis_conn, "h", f"m{i}", text)
              for i, text in enumerate(["Hola", "hola", "HOLA ", "hola", "otra cosa", "otra  cosa"])]
    assert counts == [1, 2, 3, 4, 1, 2]
    assert guard.count_repeats(redis_conn, "h", "m5", "otra cosa") == 2  # the same message again: not counted
    redis_conn.set("guard:h3:repeat", "not json")  # a value nobody can read starts the count afresh
    assert guard.count_repeats(redis_conn, "h3", "n1", "¿Dónde está?") == 1
    assert guard.count_repeats(redis_conn, "h3", "n2", "¿donde esta?") == 2  # not ASCII: read back as written


def test_message_time_follows_the_message_unless_absurd() -> None:
    at = message_time(int(TUESDAY_10AM.timestamp()), TZ)
    assert at == TUESDAY_10AM and at.tzinfo is not None
    for absurd in (0, -5, 1749416383000):
        assert abs((message_time(absurd, TZ) - datetime.now(TZ)).total_seconds()) < 5


# -- transitions -----------------------------------------------------------------------------------------


def test_greeting_shows_the_menu_and_numbers_pick_from_it(say: Say) -> None:
    ds = DialogState()
    turn = say(ds, "Hola", is_new=True)
    assert COMPANY in readable(turn.replies) and ds.state == State.IDLE
    assert ds.options[0] == "menu_track"
    turn = say(ds, "1")
    assert ds.state == State.AWAITING_CODE and "código de rastreo" in readable(turn.replies)


def test_tracking_remembers_the_package_and_its_point(say: Say) -> None:
    ds = DialogState()
    say(ds, "quiero rastrear mi paquete")
    assert ds.state == State.AWAITING_CODE
    turn = say(ds, "SV20260106012345")
    assert "En tránsito hacia Santa Ana" in readable(turn.replies)
    assert (ds.state, ds.packages, ds.point) == (State.IDLE, ["SV20260106012345"], "santa_ana")


def test_code_not_found_offers_retry_search_and_a_person(say: Say) -> None:
    ds = DialogState()
    turn = say(ds, "SV20269999999999")
    assert ds.state == State.AWAITING_NOT_FOUND_CHOICE and ds.options == ["nf_retry", "nf_search", "nf_human"]
    assert "No encontré" in readable(turn.replies)
    say(ds, "1")
    assert ds.state == State.AWAITING_CODE
    say(ds, "SV20269999999998")
    turn = say(ds, "hablar con asesor")
    assert ds.state == State.IN_HANDOFF and turn.escalation is not None and turn.escalation.priority == "normal"


def test_not_a_code_is_explained_then_a_person_is_offered(say: Say) -> None:
    ds = DialogState()
    say(ds, "quiero rastrear")
    turn = say(ds, "la caja azul")  # ("ABC123" is a wrong code, answered as one: test_dialog_context.py)
    assert ds.state == State.AWAITING_CODE and "SV" in readable(turn.replies) and ds.not_understood == 1
    say(ds, "XYZ")
    assert ds.state == State.AWAITING_HUMAN_CONFIRM


def test_topic_switch_answers_then_offers_to_resume(say: Say) -> None:
    ds = DialogState()
    say(ds, "Quiero rastrear mi paquete")
    say(ds, "¿A qué hora abren?")
    assert ds.state == State.AWAITING_POINT and ds.pending and ds.pending["state"] == State.AWAITING_CODE
    turn = say(ds, "Santa Ana")
    text = readable(turn.replies)
    assert "Calle Libertad" in text and "¿Seguimos con el rastreo de tu paquete?" in text
    assert ds.state == State.AWAITING_RESUME
    turn = say(ds, "sí")
    assert ds.state == State.AWAITING_CODE and ds.pending is None
    assert "código de rastreo" in readable(turn.replies)


def test_resume_declined_or_fulfilled(say: Say) -> None:
    ds = DialogState()
    say(ds, "cuanto cuesta enviar a Santa Ana")
    assert ds.state == State.AWAITING_WEIGHT
    say(ds, "aceptan tarjeta?")
    assert ds.state == State.AWAITING_RESUME
    turn = say(ds, "no")
    assert ds.state == State.IDLE and ds.pending is None and "algo más" in readable(turn.replies)


def test_pickup_time_and_address_refer_to_the_package_in_context(say: Say) -> None:
    ds = DialogState()
    say(ds, "SV20260105007834", phone=MARIA)
    turn = say(ds, "¿A qué hora puedo recogerlo?", phone=MARIA)
    text = readable(turn.replies)
    assert "Santa Ana - Punto Principal" in text and "8:00am" in text
    turn = say(ds, "dame la dirección", phone=MARIA)
    assert "Calle Libertad" in readable(turn.replies) and "Calle Arce" not in readable(turn.replies)
    turn = say(ds, "si", phone=MARIA)
    assert any(isinstance(r, Location) for r in turn.replies)


def test_both_packages_of_the_session(say: Say) -> None:
    ds = DialogState()
    say(ds, "Quiero rastrear SV20260106012345")
    turn = say(ds, "Y el otro que envié ayer?")
    assert ds.state == State.AWAITING_CODE and "otro paquete" in readable(turn.replies)
    say(ds, "SV20260105008921")
    turn = say(ds, "¿Cuándo llegan los dos?")
    text = readable(turn.replies)
    assert "SV20260106012345" in text and "SV20260105008921" in text


def test_y_para_20_libras_quotes_again(say: Say) -> None:
    ds = DialogState()
    say(ds, "cuanto cuesta mandar a San Miguel")
    assert ds.state == State.AWAITING_WEIGHT
    assert "$8.00" in readable(say(ds, "10 libras").replies)
    turn = say(ds, "y para 20 libras?")
    assert "$12.00" in readable(turn.replies)
    assert ds.pricing == {"destination": "san_miguel", "weight": 20.0, "origin": None}


def test_not_understood_offers_a_person_and_only_yes_opens_a_case(say: Say) -> None:
    ds = DialogState(exchanges=1)
    first = say(ds, "cuéntame un chiste")
    assert ds.not_understood == 1 and "no entendí" in readable(first.replies)
    second = say(ds, "el perico canta")
    assert ds.state == State.AWAITING_HUMAN_CONFIRM and "asesor" in readable(second.replies)
    third = say(ds, "la luna es de queso")  # never a case the customer did not ask for: offered again
    assert ds.state == State.AWAITING_HUMAN_CONFIRM and third.escalation is None
    assert "¿Quieres que te conecte con un asesor?" in readable(third.replies)
    fourth = say(ds, "sí")
    assert ds.state == State.IN_HANDOFF and fourth.escalation is not None
    assert (fourth.escalation.reason, fourth.escalation.priority) == ("not_understood", "normal")


def test_after_a_no_to_a_person_not_understood_gets_the_menu_never_a_case(say: Say) -> None:
    ds = DialogState(exchanges=1)
    say(ds, "cuéntame un chiste")
    say(ds, "el perico canta")
    assert "sigamos" in readable(say(ds, "no").replies)
    for text in ("la luna es de queso", "el sol es de mantequilla", "asdf qwer", "zzz yyy"):
        turn = say(ds, text)
        assert turn.escalation is None and ds.state != State.AWAITING_HUMAN_CONFIRM
    assert "escribe *asesor*" in readable(turn.replies)


def test_understood_message_resets_the_count(say: Say) -> None:
    ds = DialogState(exchanges=1)
    say(ds, "cuéntame un chiste")
    say(ds, "aceptan tarjeta?")
    assert ds.not_understood == 0


def test_the_same_message_five_times_offers_a_person(say: Say) -> None:
    ds = DialogState()
    turn = say(ds, "a que hora abren", repeats=5)
    assert ds.state == State.AWAITING_HUMAN_CONFIRM and "problemas" in readable(turn.replies)
    turn = say(ds, "si")
    assert turn.escalation is not None and turn.escalation.reason == "repeated_message"


@pytest.mark.parametrize(("text", "state", "priority"), [
    ("mi paquete está perdido", State.AWAITING_CODE, None),  # looked up first (design 2.3.2)
    ("mi paquete llegó dañado, quiero poner un reclamo", State.IN_HANDOFF, "high"),
    ("pésimo servicio, esto es una estafa", State.IN_HANDOFF, "high"),
])
def test_complaints(say: Say, text: str, state: State, priority: str | None) -> None:
    ds = DialogState()
    turn = say(ds, text)
    assert ds.state == state
    assert (turn.escalation.priority if turn.escalation else None) == priority


def test_lost_package_found_then_still_a_problem_escalates_high(say: Say) -> None:
    ds = DialogState()
    say(ds, "mi paquete está perdido", phone="+50370000003")
    turn = say(ds, "SV20260102005431", phone="+50370000003")
    assert ds.state == State.AWAITING_COMPLAINT_CHECK and "La Unión" in readable(turn.replies)
    turn = say(ds, "el dice que fue y no esta ahi", phone="+50370000003")
    assert turn.escalation is not None and turn.escalation.priority == "high"


def test_with_a_person_the_bot_holds_once_then_is_silent(say: Say) -> None:
    ds = DialogState()
    turn = say(ds, "quiero hablar con un asesor")
    assert ds.state == State.IN_HANDOFF and ds.handoff and ds.handoff["case"] == turn.escalation.case_number  # type: ignore[union-attr]
    held = say(ds, "ok, espero", status="escalated")
    assert turn.escalation.case_number in readable(held.replies)  # type: ignore[union-attr]
    assert say(ds, "hola?", status="escalated").replies == []  # just told what happens next
    later = datetime(2026, 1, 6, 13, 0, tzinfo=TZ)
    held = say(ds, "hola??", status="escalated", at=later)
    assert "ya está con nuestro equipo" in readable(held.replies)
    assert say(ds, "SV20260106012345", status="agent", at=later).replies == []
    back = say(ds, "hola", status="bot", at=later)
    assert ds.state == State.IDLE and back.replies


def test_opt_out_and_back_in(say: Say) -> None:
    ds = DialogState()
    assert say(ds, "STOP").opt_out is True
    assert say(ds, "BAJA").opt_out is True
    assert say(ds, "no me manden más mensajes").opt_out is True
    turn = say(ds, "ALTA", opted_out=True)
    assert turn.opt_out is False and "Volverás" in readable(turn.replies)
    assert say(ds, "START", opted_out=False).opt_out is None


def test_goodbye_asks_for_a_rating_once(say: Say) -> None:
    ds = DialogState()
    say(ds, "aceptan tarjeta?")
    turn = say(ds, "adiós")
    assert ds.state == State.AWAITING_CSAT and "atención" in readable(turn.replies)
    turn = say(ds, "😊 Excelente", reply_id="csat:5")
    assert turn.events == [("csat", {"score": 5})] and ds.state == State.IDLE
    say(ds, "adiós")
    assert ds.state == State.IDLE


def test_long_conversation_gets_a_summary_once(say: Say) -> None:
    ds = DialogState(exchanges=machine.SUMMARY_AFTER - 2)
    say(ds, "¿Dónde queda el punto de Santa Ana?")
    turn = say(ds, "aceptan tarjeta?")
    assert "te he ayudado con" in readable(turn.replies) and ds.summary_sent
    assert "te he ayudado con" not in readable(say(ds, "requisitos para enviar").replies)


def test_core_down_is_said_and_the_question_kept(say: Say) -> None:
    ds = DialogState()
    say(ds, "quiero rastrear")
    down = CoreClient("http://127.0.0.1:1", timeout_s=0.5, retry_delay_s=0)
    turn = say(ds, "SV20260106012345", core=down)
    assert "problemas técnicos" in readable(turn.replies)
    assert ds.state == State.AWAITING_CODE


def test_first_contact_and_returning_greetings(say: Say) -> None:
    first = say(DialogState(), "Buenos días", is_new=True)
    assert readable(first.replies).startswith("¡Buenos días, Juan! 👋 Soy el asistente virtual")
    again = say(DialogState(), "Hola")
    assert readable(again.replies).startswith("¡Hola de nuevo, Juan!")
    night = say(DialogState(), "Hola", at=datetime(2026, 1, 6, 23, 0, tzinfo=TZ))
    assert "24/7" in readable(night.replies)


def test_stranger_without_phone_is_a_stranger(say: Say) -> None:
    turn = say(DialogState(), "SV20260105007834", phone=None)
    text = readable(turn.replies)
    assert "Santa Ana" in text and "$35" not in text and "María" not in text


def test_searching_without_a_code_keeps_no_code_a_stranger_could_open(say: Say) -> None:
    """Design 9.1: a name only confirms; the session holds nothing that "1" or a typed title would open."""
    ds = DialogState()
    say(ds, "no tengo el código", phone=STRANGER)
    assert ds.state == State.AWAITING_NAME
    say(ds, "López", phone=STRANGER)
    assert ds.state == State.AWAITING_NAME  # a surname alone: asked again for the full name
    say(ds, "María López", phone=STRANGER)
    assert ds.state == State.AWAITING_POINT and "point:any" not in ds.options
    turn = say(ds, "Santa Ana", phone=STRANGER)
    assert "Sí hay un paquete" in readable(turn.replies) and "SV2026" not in readable(turn.replies)
    assert (ds.state, ds.options, ds.listed, ds.packages) == (
        State.AWAITING_NOT_FOUND_CHOICE, ["nf_retry", "nf_human"], [], [])
    turn = say(ds, "1", phone=STRANGER)
    assert ds.state == State.AWAITING_CODE and ds.packages == [] and "Paquete encontrado" not in readable(turn.replies)


def test_a_greeting_before_the_name_is_not_part_of_it(say: Say) -> None:
    """The router reads the name (lexicon: name_greetings, name_prefixes); "Buenos días" alone is no name."""
    for not_a_name in ("no sé", "Buenos días"):
        ds = DialogState()
        say(ds, "no tengo el código", phone=STRANGER)
        turn = say(ds, not_a_name, phone=STRANGER)
        assert ds.state == State.AWAITING_NAME and ds.search == {}  # asked again, nothing searched
        assert "Buenos" not in readable(turn.replies)
    turn = say(ds, "Buenos días, mi nombre es María López", phone=STRANGER)
    assert ds.state == State.AWAITING_POINT and ds.search == {"name": "María López"}
    assert "María" in readable(turn.replies) and "Buenos" not in readable(turn.replies)
    say(ds, "Santa Ana", phone=STRANGER)
    assert ds.state == State.AWAITING_NOT_FOUND_CHOICE
    turn = say(ds, "hola, soy Pedro Ramírez, en San Miguel", phone=STRANGER)  # another name typed at once
    assert ds.search == {"name": "Pedro Ramírez"} and "Pedro Ramírez" in readable(turn.replies)


def test_after_a_code_not_found_the_buttons_are_awaited_not_a_name() -> None:
    ds = DialogState(state=State.AWAITING_NOT_FOUND_CHOICE.value, not_found_code="SV20260101999999")
    assert machine.context_for(ds).expecting == "option"


@pytest.mark.parametrize(("text", "opener"), [
    ("Buenos días", "¡Buenos días, Juan!"), ("buen dia", "¡Buen día, Juan!"),
    ("Buenas tardes!", "¡Buenas tardes, Juan!"), ("buenas noches", "¡Buenas noches, Juan!"),
    ("buenasss", "¡Buenas, Juan!"), ("hola buenas", "¡Hola de nuevo, Juan!"),
])
def test_a_greeting_is_answered_in_its_own_words(say: Say, text: str, opener: str) -> None:
    assert readable(say(DialogState(), text).replies).startswith(opener)
    assert set(wording()["greeting_openers"]) <= cues.names()  # the texts hold wording, the lexicon the words


@pytest.mark.parametrize(("text", "reply"), [
    ("👍", "¡Con gusto!"), ("❤️", "¡Con gusto!"), ("🙏🙏", "¡Con gusto!"), ("😀", "¿En qué te puedo ayudar?"),
])
def test_an_emoji_alone_is_thanked_or_helped(say: Say, text: str, reply: str) -> None:
    assert reply in readable(say(DialogState(), text).replies)


@pytest.mark.parametrize(("phone", "state"), [(STRANGER, State.AWAITING_NAME), (None, State.AWAITING_NOT_FOUND_CHOICE)])
def test_a_typed_phone_is_never_searched(say: Say, phone: str | None, state: State) -> None:
    ds = DialogState()
    assert say(ds, "no tengo el código", phone=phone) and ds.state == state
    turn = say(ds, "7000-0002", phone=phone)
    text = readable(turn.replies)
    assert "SV2026" not in text and "María" not in text and "Pedro" not in text
    assert ds.state == State.AWAITING_NOT_FOUND_CHOICE and ds.options == ["nf_retry", "nf_human"]
    assert ds.listed == [] and ds.packages == []




def test_anything_else_yes_shows_the_menu_no_says_goodbye(say: Say) -> None:
    ds = DialogState()
    turn = say(ds, "aceptan tarjeta?")
    assert readable(turn.replies).endswith("¿Te ayudo con algo más? 😊")
    assert machine.context_for(ds).expecting == "yes_no"
    assert "Rastrear paquete" in readable(say(ds, "sí").replies)
    say(ds, "¿qué pasa si no retiran mi paquete?")
    turn = say(ds, "no")
    assert "excelente día" in readable(turn.replies)


def test_a_quote_followed_by_another_destination(say: Say) -> None:
    ds = DialogState()
    say(ds, "cuánto cuesta mandar 15 libras a San Miguel")
    turn = say(ds, "¿y a Usulután?")
    assert "Usulután" in readable(turn.replies) and "15 lbs" in readable(turn.replies)


def test_asking_for_the_location_sends_the_pin(say: Say) -> None:
    turn = say(DialogState(), "mándame la ubicación de San Miguel")
    pins = [r for r in turn.replies if isinstance(r, Location)]
    assert pins and pins[0].name == "San Miguel - Punto Principal" and "Roosevelt" in (pins[0].address or "")


def test_every_text_the_dialog_says_is_in_the_texts_file() -> None:
    from chatbot.dialog.turn import wording

    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "chatbot" / "dialog").glob("*.py"))
    keys = set(re.findall(r"""(?:say|line|menu_help\(t,)\(?\s*["']([a-z_.]+)["']""", source))
    assert len(keys) > 30
    for key in keys:
        node = wording()
        for part in key.split("."):
            assert part in node, f"services/texts/dialog.yaml has no {key!r}"
            node = node[part]
