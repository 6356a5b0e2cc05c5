"""Property-based fuzzing of the Meta and Twilio webhooks and of /internal/events (issue 12).

Inputs are real captured payloads (tests/fixtures) mutated at random, next to
well-formed messages: values replaced by random unicode (lone surrogates and
NULs included), huge numbers, nulls, lists and objects; keys deleted; whole
bodies replaced by random bytes, deep nesting or broken JSON. Two properties,
through the real Flask app and the real PostgreSQL:
- never a 5xx;
- every well-formed message in a delivery is stored exactly once, whatever
  else the delivery carries (and again exactly once when it is delivered twice).
The example counts are bounded and the generation derandomized, so the run
is the same on every machine and stays within seconds.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import ConnectionPool

from config import Settings
from notifications import events as core_events
from tests.conftest import FIXTURES, load_fixture
from tests.harness import post_meta, post_twilio, rows
from tests.notifications_helpers import SECRET, status_event
from web.app import create_app

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
OUR_NUMBER_ID = "106540352242922"
_ids = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{time.monotonic_ns()}x{next(_ids)}"


# --- strategies -------------------------------------------------------------------------------

# Any code point, lone surrogates and NUL included, plus the characters that broke things before.
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),
    st.sampled_from(["\ud800", "\udfff", "a\x00b", "²", "١٢٣", "\u202e", "", " ", "9" * 50, "NaN"]),
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
                   st.floats(allow_nan=False, allow_infinity=False), hostile_text)
hostile_value = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                             | st.dictionaries(hostile_text, inner, max_size=3), max_leaves=8)
# Text a customer may really send: anything but lone surrogates (UTF-8 cannot carry them).
customer_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


def _fixture_items(kind: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(FIXTURES.glob("meta_*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        for entry in payload.get("entry", []) if isinstance(payload, dict) else []:
            for change in entry.get("changes", []):
                found.extend(change.get("value", {}).get(kind, []))
    return found


REAL_MESSAGES = _fixture_items("messages")
REAL_STATUSES = _fixture_items("statuses")


def _slots(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a key or index inside `value`."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*path, key)
            yield from _slots(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*path, index)
            yield from _slots(child, (*path, index))


@st.composite
def mutated(draw: st.DrawFn, originals: list[dict[str, Any]]) -> dict[str, Any]:
    """A real item with a fresh id, then 1-3 of its values replaced by hostile ones or deleted."""
    item = copy.deepcopy(draw(st.sampled_from(originals)))
    item["id"] = unique("wamid.BAD")
    for _ in range(draw(st.integers(1, 3))):
        slots = list(_slots(item))
        if not slots:
            break
        *parents, last = draw(st.sampled_from(slots))
        container: Any = item
        for step in parents:
            container = container[step]
        if draw(st.booleans()) and isinstance(container, dict):
            del container[last]
        else:
            container[last] = draw(hostile_value)
    return item


@st.composite
def good_message(draw: st.DrawFn) -> dict[str, Any]:
    phone = f"5037{draw(st.integers(0, 9_999_999)):07d}"
    return {"from": phone, "id": unique("wamid.GOOD"), "timestamp": str(int(time.time())), "type": "text",
            "text": {"body": draw(customer_text)}}


def delivery(messages: list[dict[str, Any]], statuses: list[dict[str, Any]],
             contacts: list[dict[str, Any]]) -> dict[str, Any]:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": OUR_NUMBER_ID},
             "contacts": contacts, "messages": messages, "statuses": statuses}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "419561257915477", "changes": [{"field": "messages", "value": value}]}]}


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def client(settings: Settings) -> Iterator[FlaskClient]:
    app = create_app(settings.with_overrides(simulator_enabled=False))
    with app.test_client() as test_client:
        yield test_client
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


def stored(pool: ConnectionPool, event_id: str) -> list[str]:
    return [r["status"] for r in rows(pool, "SELECT status FROM webhook_events WHERE event_id = %s", (event_id,))]


def event_count(pool: ConnectionPool) -> int:
    return int(rows(pool, "SELECT count(*) AS n FROM webhook_events")[0]["n"])


# --- Meta -------------------------------------------------------------------------------------


@FUZZ
@given(good=st.lists(good_message(), min_size=1, max_size=3),
       bad=st.lists(mutated(REAL_MESSAGES), max_size=2),
       bad_statuses=st.lists(mutated(REAL_STATUSES), max_size=2),
       order=st.randoms(use_true_random=False))
def test_meta_good_messages_are_stored_once_whatever_rides_along(
    client: FlaskClient, db_pool: ConnectionPool, good: list[dict[str, Any]], bad: list[dict[str, Any]],
    bad_statuses: list[dict[str, Any]], order: Any
) -> None:
    messages = good + bad
    order.shuffle(messages)
    contacts = [{"profile": {"name": "Cliente"}, "wa_id": m["from"]} for m in good]
    raw = json.dumps(delivery(messages, bad_statuses, contacts)).encode()  # ASCII: surrogates travel escaped
    for _ in range(2):  # Meta delivers again when unsure: still exactly once
        response = post_meta(client, raw)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        for message in good:
            assert stored(db_pool, message["id"]) in (["received"], ["queued"])


@FUZZ
@given(body=st.one_of(
    st.binary(max_size=200),
    st.integers(2, 5000).map(lambda depth: b'{"entry": ' + b"[" * depth + b"]" * depth + b"}"),
    st.integers(2, 3000).map(lambda n: b'{"object": "whatsapp_business_account", "entry": [' + b"7" * n + b"]}"),
    st.sampled_from([b'{"entry": [NaN]}', b'{"entry": [1e999]}', b'{"entry": "x"}', b"null", b'"\\ud800"']),
    st.tuples(st.sampled_from(sorted(FIXTURES.glob("meta_*.json"))), st.integers(0, 10_000), st.binary(max_size=3))
    .map(lambda t: (lambda raw: raw[:t[1] % len(raw)] + t[2] + raw[t[1] % len(raw) + 1:])(t[0].read_bytes())),
))
def test_meta_hostile_bodies_never_get_a_5xx(client: FlaskClient, db_pool: ConnectionPool, body: bytes) -> None:
    before = event_count(db_pool)
    response = post_meta(client, body)
    assert response.status_code < 500
    if response.status_code != 200:
        assert event_count(db_pool) == before


@FUZZ
@given(data=st.data())
def test_meta_real_fixtures_mutated_never_get_a_5xx(client: FlaskClient, db_pool: ConnectionPool,
                                                    data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(FIXTURES.glob("meta_*.json"))))
    payload = json.loads(path.read_text(encoding="utf-8"))
    for _ in range(data.draw(st.integers(1, 4))):
        slots = list(_slots(payload))
        *parents, last = data.draw(st.sampled_from(slots))
        container: Any = payload
        for step in parents:
            container = container[step]
        container[last] = data.draw(hostile_value)
    response = post_meta(client, json.dumps(payload).encode())
    assert response.status_code in (200, 400)


# --- Twilio -----------------------------------------------------------------------------------


TWILIO_FORMS = [{k: str(v) for k, v in load_fixture(p.name).items()}
                for p in sorted(FIXTURES.glob("twilio_inbound_*.json"))]
form_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@FUZZ
@given(form=st.sampled_from(TWILIO_FORMS), changes=st.dictionaries(
    st.sampled_from(["Body", "From", "To", "NumMedia", "Latitude", "Longitude", "ButtonPayload", "ListId",
                     "MediaContentType0", "MediaUrl0", "ProfileName", "WaId", "SmsStatus", "Extra\x00"]),
    st.one_of(form_text, st.sampled_from(["9" * 5000, "nan", "inf", "-0", "whatsapp:+²³", "\x00"])), max_size=4),
    sender_ok=st.booleans(), sid_tail=st.sampled_from(["", "", "\x00", "²", "x" * 300]))
def test_twilio_forms_never_get_a_5xx_and_a_message_is_kept_once(
    client: FlaskClient, db_pool: ConnectionPool, form: dict[str, str], changes: dict[str, str], sender_ok: bool,
    sid_tail: str
) -> None:
    sid = unique("SM") + sid_tail
    fields = {**form, **changes, "MessageSid": sid, "SmsMessageSid": sid, "To": "whatsapp:+14155238886"}
    fields.pop("MessageStatus", None)
    if sender_ok:
        fields["From"] = "whatsapp:+50370000001"
    before = event_count(db_pool)
    response = post_twilio(client, fields)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert post_twilio(client, fields).status_code == 200  # Twilio retries: still kept once
    assert event_count(db_pool) == before + 1  # kept once: as a message, or quarantined with its reason
    if sender_ok and sid_tail in ("", "²"):
        assert stored(db_pool, sid) in (["received"], ["queued"])  # well-formed: a message to answer


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), form_text.map(lambda t: t.encode("utf-8"))),
       content_type=st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]))
def test_twilio_hostile_bodies_never_get_a_5xx(client: FlaskClient, db_pool: ConnectionPool, body: bytes,
                                               content_type: str) -> None:
    before = event_count(db_pool)
    response = client.post("/webhooks/twilio", data=body, content_type=content_type,
                           headers={"X-Twilio-Signature": "c2lnbmF0dXJl"})
    assert response.status_code in (400, 403)
    assert event_count(db_pool) == before


# --- /internal/events ---------------------------------------------------------------------------


@st.composite
def core_event_body(draw: st.DrawFn) -> bytes:
    event: dict[str, Any] = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", event_id=unique("e-"))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*event, "tenant", "refund", "extra"]))
        if draw(st.booleans()) and key in event:
            del event[key]
        else:
            event[key] = draw(hostile_value)
    return json.dumps(event).encode()


@FUZZ
@given(body=st.one_of(core_event_body(), st.binary(max_size=100),
                      st.integers(2, 20_000).map(lambda d: b"[" * d + b"]" * d)),
       timestamp=st.one_of(st.none(), st.sampled_from(["²", "١٢٣", "9" * 5000, "-1", "1e9", "0x10"]),
                           st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=15)),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
       key_id=st.one_of(st.none(), st.sampled_from(["demo", "otra", "x" * 100]), st.text(max_size=10)),
       signed=st.booleans())
def test_internal_events_never_get_a_5xx_and_an_accepted_event_is_stored_once(
    client: FlaskClient, db_pool: ConnectionPool, body: bytes, timestamp: str | None, content_type: str,
    key_id: str | None, signed: bool
) -> None:
    ts = str(int(time.time())) if timestamp is None else timestamp
    headers = {"Content-Type": content_type, core_events.TIMESTAMP_HEADER: ts,
               core_events.SIGNATURE_HEADER: core_events.sign(SECRET if signed else "other", ts, body)}
    if key_id is not None:
        headers[core_events.KEY_ID_HEADER] = key_id
    response = client.post("/internal/events", data=body, headers=headers)
    assert response.status_code in (202, 400, 401, 403, 415), response.get_data(as_text=True)[:300]
    if response.status_code == 202:
        event_id = response.get_json()["event_id"]
        assert client.post("/internal/events", data=body, headers=headers).status_code == 202
        assert len(rows(db_pool, "SELECT id FROM core_events WHERE event_id = %s", (event_id,))) == 1
