"""One sandbox core serving two companies over real HTTP: each API key sees its own company only.

Company 1 is the demo company (sandbox_core/data/core_demo.json), company 2 the generated one
(core_demo2.json, sandbox_core/generate.py). The customer +50370000001 has packages at both.
Also: the product's client and services read company 2's data through every endpoint they use,
and the `encargo-sandbox-core` process starts with SANDBOX_CORE_COMPANIES.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from channels.outbound import Buttons, ChoiceList, Location, OutboundMessage, preview_text
from core_api_client import CoreBadRequest, CoreClient
from sandbox_core import BackgroundServer, create_sandbox_app
from sandbox_core.companies import CompanyConfig, parse_companies
from sandbox_core.generate import OUTPUT_PATH, SHARED_PHONE, generate, render
from sandbox_core.generate import main as generate_main
from sandbox_core.state import DEFAULT_DATA_PATH, load_data
from services import ServiceContext, business, lookup, tracking
from tests.harness import SANDBOX_ENTRY_POINT, sandbox_process
from tests.services_support import SV, TUESDAY_1030

ROOT = Path(__file__).resolve().parent.parent
DATA = {1: load_data(DEFAULT_DATA_PATH), 2: load_data(OUTPUT_PATH)}
KEYS = {1: "company-one-key", 2: "company-two-key"}
SECRETS = {1: "company-one-events-secret", 2: "company-two-events-secret"}
KEY_IDS = {1: "demo", 2: "demo2"}


def codes(company: int) -> set[str]:
    return {p["tracking_code"] for p in DATA[company]["packages"]}


def shared_codes(company: int) -> set[str]:
    return {p["tracking_code"] for p in DATA[company]["packages"]
            if SHARED_PHONE in (p["sender"]["phone"], p["recipient"]["phone"])}


def phones(company: int) -> set[str]:
    return {party["phone"] for p in DATA[company]["packages"] for party in (p["sender"], p["recipient"])}


def configs(events_url: str = "") -> list[CompanyConfig]:
    return [
        CompanyConfig(DEFAULT_DATA_PATH, KEYS[1], events_url, SECRETS[1], KEY_IDS[1]),
        CompanyConfig(OUTPUT_PATH, KEYS[2], events_url, SECRETS[2], KEY_IDS[2]),
    ]


def auth(company: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[company]}"}


class EventReceiver:
    """Stands in for the bot's /internal/events: keeps what it is sent, answers 202."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        self.received.append((headers, body))
        start_response("202 Accepted", [("Content-Length", "0")])
        return [b""]


@pytest.fixture(scope="module")
def two_cores() -> Iterator[str]:
    with BackgroundServer(create_sandbox_app(companies=configs())) as server:
        yield server.url


def get(url: str, company: int | None, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, headers=auth(company) if company else {}, timeout=5, **kwargs)


# -- the generated data -------------------------------------------------------------------------------


def test_the_committed_second_company_is_what_the_generator_makes() -> None:
    assert render(generate(DATA[1])) == OUTPUT_PATH.read_text(encoding="utf-8")
    assert generate_main(["--check"]) == 0


def test_the_generator_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "core_demo2.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert generate_main(["--check", "--output", str(stale)]) == 1
    assert generate_main(["--output", str(stale)]) == 0
    assert generate_main(["--check", "--output", str(stale)]) == 0


def test_the_two_companies_share_nothing_but_one_customer() -> None:
    one, two = DATA[1], DATA[2]
    assert one["company"]["name"] != two["company"]["name"]
    assert one["company"]["emergency_phone"] != two["company"]["emergency_phone"]
    assert not {p["id"] for p in one["points"]} & {p["id"] for p in two["points"]}
    assert not {p["city"] for p in one["points"]} & {p["city"] for p in two["points"]}
    assert not {p["address"] for p in one["points"]} & {p["address"] for p in two["points"]}
    assert one["pricing"]["zones"] != two["pricing"]["zones"]
    assert one["policies"] != two["policies"]
    assert not codes(1) & codes(2)
    assert phones(1) & phones(2) == {SHARED_PHONE}
    assert shared_codes(1) and shared_codes(2)
    # The zones and statuses are the ones the product reads; codes keep the format the bot recognises.
    assert set(two["pricing"]["zones"]) == set(one["pricing"]["zones"])
    assert {"within_san_salvador", "rural"} <= set(two["delivery_times"])
    assert all(len(code) == 16 and code.startswith("SV") and code[2:].isdigit() for code in codes(2))
    point_ids = {p["id"] for p in two["points"]}
    for package in two["packages"]:
        assert {package["origin_point"], package["destination_point"]} <= point_ids
        assert all(h["point"] in point_ids | {None} for h in package["history"])
        assert package["history"][-1]["status"] == package["status"]


# -- isolation: each key sees its own company -------------------------------------------------------


@pytest.mark.parametrize(("own", "other"), [(1, 2), (2, 1)])
def test_a_key_tracks_its_own_packages_and_the_others_are_404(two_cores: str, own: int, other: int) -> None:
    for code in codes(own):
        response = get(f"{two_cores}/api/packages/track/{code}", own)
        assert response.status_code == 200 and response.json()["tracking_code"] == code
    for code in codes(other):
        response = get(f"{two_cores}/api/packages/track/{code}", own)
        assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.parametrize(("own", "other"), [(1, 2), (2, 1)])
def test_the_shared_customer_finds_only_the_packages_of_the_company_asked(
    two_cores: str, own: int, other: int
) -> None:
    found = get(f"{two_cores}/api/packages/search", own, params={"phone": SHARED_PHONE, "limit": 100}).json()
    assert {p["tracking_code"] for p in found["packages"]} == shared_codes(own)
    for stranger in sorted(phones(other) - {SHARED_PHONE}):
        assert get(f"{two_cores}/api/packages/search", own, params={"phone": stranger}).json()["packages"] == []
    someone = DATA[other]["packages"][0]["recipient"]["name"]
    by_name = get(f"{two_cores}/api/packages/search", own, params={"name": someone}).json()["packages"]
    assert not {p["tracking_code"] for p in by_name} & codes(other)


@pytest.mark.parametrize(("own", "other"), [(1, 2), (2, 1)])
def test_points_company_prices_and_policies_are_the_own_companys(two_cores: str, own: int, other: int) -> None:
    points = get(f"{two_cores}/api/points", own).json()["points"]
    assert points == DATA[own]["points"]
    for point in DATA[other]["points"]:
        assert get(f"{two_cores}/api/points/{point['id']}", own).status_code == 404
    company = get(f"{two_cores}/api/company", own).json()
    assert company["name"] == DATA[own]["company"]["name"]
    table = get(f"{two_cores}/api/pricing/table", own).json()
    assert table == {"pricing": DATA[own]["pricing"], "delivery_times": DATA[own]["delivery_times"]}
    assert get(f"{two_cores}/api/policies", own).json() == DATA[own]["policies"]
    others_town = DATA[other]["points"][1]["city"]
    quote = get(f"{two_cores}/api/pricing", own, params={"origin": "San Salvador", "destination": others_town,
                                                       "weight": "2"})
    assert quote.status_code == 400 and quote.json()["parameter"] == "destination"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-company"},
                                     {"Authorization": KEYS[2]}, {"Authorization": f"Basic {KEYS[1]}"}])
def test_a_key_of_no_company_is_refused(two_cores: str, headers: dict[str, str]) -> None:
    for path in ("/api/points", "/api/packages/track/SV20260106012345", "/api/nothing-here"):
        response = httpx.get(f"{two_cores}{path}", headers=headers, timeout=5)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert httpx.get(f"{two_cores}/health", timeout=5).json() == {"ok": True}


def test_notification_logs_are_kept_per_company() -> None:
    with BackgroundServer(create_sandbox_app(companies=configs())) as core:
        url = f"{core.url}/api/notifications/log"
        one_code, two_code = sorted(codes(1))[0], sorted(codes(2))[0]
        entry = {"channel": "whatsapp", "type": "status_update", "notification_id": "n-1"}
        assert httpx.post(url, json={**entry, "tracking_code": one_code}, headers=auth(1)).status_code == 201
        assert httpx.post(url, json={**entry, "tracking_code": two_code}, headers=auth(1)).status_code == 404
        assert httpx.post(url, json={**entry, "tracking_code": two_code}, headers=auth(2)).status_code == 201
        one = httpx.get(url, headers=auth(1)).json()["notifications"]
        two = httpx.get(url, headers=auth(2)).json()["notifications"]
    assert [(n["id"], n["tracking_code"]) for n in one] == [(1, one_code)]
    assert [(n["id"], n["tracking_code"]) for n in two] == [(1, two_code)]  # the same id repeats: not a dup


def test_each_companys_status_changes_and_events_are_its_own() -> None:
    receiver = EventReceiver()
    with BackgroundServer(receiver) as bot:
        with BackgroundServer(create_sandbox_app(companies=configs(f"{bot.url}/internal/events"))) as core:
            two_code = next(p["tracking_code"] for p in DATA[2]["packages"] if p["status"] == "IN_TRANSIT")
            one_code = "SV20260106012890"  # RECEIVED_AT_ORIGIN at company 1
            change = f"{core.url}/sandbox/packages/{two_code}/status"
            refused = httpx.post(change, json={"status": "ARRIVED_AT_DESTINATION"}, headers=auth(1))
            assert refused.status_code == 404
            moved = httpx.post(change, json={"status": "ARRIVED_AT_DESTINATION"}, headers=auth(2))
            assert moved.status_code == 200 and moved.json()["event_delivered"] is True
            assert moved.json()["history"][-1]["point"] in {p["id"] for p in DATA[2]["points"]}
            one_moved = httpx.post(f"{core.url}/sandbox/packages/{one_code}/status",
                                   json={"status": "IN_TRANSIT"}, headers=auth(1))
            assert one_moved.status_code == 200 and one_moved.json()["event_delivered"] is True
            tracked = get(f"{core.url}/api/packages/track/{two_code}", 2).json()
            assert tracked["status"] == "ARRIVED_AT_DESTINATION"
            assert get(f"{core.url}/api/packages/track/{one_code}", 1).json()["status"] == "IN_TRANSIT"
    assert len(receiver.received) == 2
    for (headers, body), company, code in zip(receiver.received, (2, 1), (two_code, one_code), strict=True):
        assert headers["X-Encargo-Key-Id"] == KEY_IDS[company]
        signed = f"{headers['X-Encargo-Timestamp']}.".encode() + body
        own = hmac.new(SECRETS[company].encode(), signed, hashlib.sha256).hexdigest()
        other = hmac.new(SECRETS[3 - company].encode(), signed, hashlib.sha256).hexdigest()
        assert headers["X-Encargo-Signature"] == f"sha256={own}" != f"sha256={other}"
        assert json.loads(body)["tracking_code"] == code


@pytest.mark.parametrize(
    ("companies", "message"),
    [
        ([CompanyConfig(api_key="k"), CompanyConfig(api_key="k")], "own non-empty api_key"),
        ([CompanyConfig(api_key="k"), CompanyConfig()], "own non-empty api_key"),
        ([], "at least one company"),
    ],
)
def test_companies_that_cannot_be_told_apart_are_refused(companies: list[CompanyConfig], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_sandbox_app(companies=companies)
    with pytest.raises(ValueError, match="not both"):
        create_sandbox_app(api_key="k", companies=[CompanyConfig(api_key="k")])


# -- the product reads company 2 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_two(two_cores: str) -> Iterator[CoreClient]:
    with CoreClient(two_cores, KEYS[2], timeout_s=5, retry_delay_s=0.01) as client:
        yield client


def test_the_client_reads_every_package_of_company_two(client_two: CoreClient) -> None:
    points = {p["id"]: p for p in DATA[2]["points"]}
    for raw in DATA[2]["packages"]:
        package = client_two.track(raw["tracking_code"].lower())
        assert package is not None
        assert (package.tracking_code, package.status) == (raw["tracking_code"], raw["status"])
        assert package.origin_city == points[raw["origin_point"]]["city"]
        assert package.destination_city == points[raw["destination_point"]]["city"]
        assert (package.sender.phone, package.recipient.name) == (raw["sender"]["phone"], raw["recipient"]["name"])
        assert package.amount_to_collect == raw["amount_to_collect"]
        assert (package.refund is None) == (raw["refund"] is None)
        assert (package.eta is None) == (raw["eta"] is None)
        assert [h.status for h in package.history] == [h["status"] for h in raw["history"]]
        assert package.last_event is not None and package.last_event.at.utcoffset() is not None
    shared = client_two.search(phone=SHARED_PHONE, limit=50)
    assert {p.tracking_code for p in shared} == shared_codes(2) and all(p.is_party(SHARED_PHONE) for p in shared)
    started = [p.history[0].at for p in shared]
    assert started == sorted(started, reverse=True)
    waiting = next(p for p in DATA[2]["packages"] if p["status"] == "ARRIVED_AT_DESTINATION")
    named = client_two.search(name=waiting["recipient"]["name"], destination=waiting["destination_point"])
    assert waiting["tracking_code"] in {p.tracking_code for p in named}


def test_the_client_reads_company_twos_points_prices_company_and_policies(client_two: CoreClient) -> None:
    points = client_two.points()
    assert [p.id for p in points] == [p["id"] for p in DATA[2]["points"]]
    for point in points:
        assert client_two.point(point.id) == point
        assert point.lat is not None and point.lng is not None and point.hours["mon-fri"] is not None
        assert point.to_json() == DATA[2]["points"][points.index(point)]
    company = client_two.company()
    assert (company.name, company.timezone) == ("Envíos Rápidos Cuscatlán", "America/El_Salvador")
    assert company.support_hours["sun"] is None and company.emergency_phone
    assert client_two.policies()["unclaimed_days"] == DATA[2]["policies"]["unclaimed_days"]
    assert client_two.pricing_table()["pricing"] == DATA[2]["pricing"]
    within = client_two.quote("Mejicanos", "Ilopango", 2)
    assert (within.cost, within.zone) == (2.75, "within_san_salvador")
    assert within.delivery_time == DATA[2]["delivery_times"]["within_san_salvador"]
    far = client_two.quote("mejicanos", "Usulután", 12)
    assert (far.cost, far.zone, far.delivery_time) == (11.75, "other_departments", "2 días hábiles")
    with pytest.raises(CoreBadRequest) as refused:
        client_two.quote("Mejicanos", "Santa Ana", 2)  # company 1's town, not company 2's
    assert refused.value.parameter == "destination"
    client_two.log_notification(sorted(codes(2))[0], "status_update", datetime(2026, 1, 6, 16, tzinfo=UTC),
                                details={"notification_id": "client-two-1"})


def read(replies: list[OutboundMessage]) -> str:
    return "\n".join(preview_text(m) for m in replies)


@pytest.fixture
def ctx_two(client_two: CoreClient, redis_conn: redis.Redis) -> ServiceContext:
    return ServiceContext(client_two, redis_conn, KEY_IDS[2], "Envíos Rápidos Cuscatlán", SV, TUESDAY_1030)


def test_the_services_answer_from_company_twos_data(ctx_two: ServiceContext) -> None:
    for raw in DATA[2]["packages"]:
        answer = tracking.track(ctx_two, raw["tracking_code"], SHARED_PHONE)
        assert answer.outcome == "found"
        assert answer.full_access == (raw["tracking_code"] in shared_codes(2))
        assert raw["tracking_code"] in read(answer.replies)
    own = lookup.own_packages(ctx_two, SHARED_PHONE)
    assert own.outcome == "listed" and set(own.codes) == shared_codes(2)
    assert not set(own.codes) & codes(1)
    everywhere = business.location_answer(ctx_two, None)
    assert isinstance(everywhere[0], ChoiceList)
    assert [r.id for r in everywhere[0].rows] == [f"point:{p['id']}" for p in DATA[2]["points"]]
    for point in DATA[2]["points"]:
        [message] = business.location_answer(ctx_two, point["id"])
        assert isinstance(message, Buttons) and point["address"] in message.body
        pin = business.location_pin(ctx_two, point["id"])
        assert isinstance(pin, Location) and (pin.latitude, pin.longitude) == (point["lat"], point["lng"])
        assert business.hours_answer(ctx_two, point["id"], None)
    priced = read(business.pricing_answer(ctx_two, "Ilopango", 2, origin="Mejicanos").replies)
    assert "$2.75" in priced and "Mejicanos → Ilopango" in priced
    rural = read(business.pricing_answer(ctx_two, "Sonsonate", 8).replies)
    assert "$7.50" in rural and "$3-6" in rural
    assert "2 días hábiles" in read(business.delivery_time_answer(ctx_two, "Usulután"))


# -- the process ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_the_entry_point_serves_the_companies_of_sandbox_core_companies(tmp_path: Path) -> None:
    listing = tmp_path / "companies.json"
    listing.write_text(json.dumps([
        {"data": str(DEFAULT_DATA_PATH), "api_key": KEYS[1], "events_secret": SECRETS[1], "events_key_id": "demo"},
        {"data": str(OUTPUT_PATH), "api_key": KEYS[2], "events_secret": SECRETS[2], "events_key_id": "demo2"},
    ]), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "SANDBOX_CORE_PORT": str(port), "SANDBOX_CORE_COMPANIES": str(listing),
           "CORE_API_KEY": "ignored-single-key", "LOG_LEVEL": "INFO"}
    stderr_path = tmp_path / "stderr.log"
    with sandbox_process(env, port, stderr_path) as base:
        for company in (1, 2):
            assert get(f"{base}/api/company", company).json()["name"] == DATA[company]["company"]["name"]
        assert httpx.get(f"{base}/api/company", headers={"Authorization": "Bearer ignored-single-key"},
                         timeout=5).status_code == 401
    log = stderr_path.read_text()
    assert "key id=demo2" in log and "core_demo2.json" in log
    assert not any(secret in log for secret in (*KEYS.values(), *SECRETS.values()))


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("[]", "non-empty JSON array"),
        ('[{"data": "x.json"}]', "SANDBOX_CORE_COMPANIES[0].api_key is required"),
        ('[{"api_key": "k", "secret": "s"}]', "unknown field(s) ['secret']"),
        ('[{"api_key": 7}]', "SANDBOX_CORE_COMPANIES[0].api_key must be text"),
        ("[{", "not valid JSON"),
        ("/nonexistent/companies.json", "cannot read"),
    ],
)
def test_a_bad_companies_list_is_named(value: str, complaint: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_companies(value)
    assert complaint in str(refused.value)


def test_the_entry_point_refuses_a_bad_companies_list_in_one_line() -> None:
    env = {**os.environ, "SANDBOX_CORE_COMPANIES": '[{"api_key": "k1"}, {"api_key": "k1"}]'}
    done = subprocess.run(SANDBOX_ENTRY_POINT, cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "encargo-sandbox-core: cannot start: with several companies, each needs its own non-empty api_key")


def test_companies_listed_inline_take_the_shared_events_url() -> None:
    listed = parse_companies(json.dumps([{"api_key": "key-aaa", "events_secret": "secret-bbb"},
                                         {"api_key": "b", "events_url": "http://elsewhere/internal/events"}]),
                             events_url="http://bot/internal/events")
    assert [c.events_url for c in listed] == ["http://bot/internal/events", "http://elsewhere/internal/events"]
    assert [c.data_path for c in listed] == [None, None]
    assert "key-aaa" not in repr(listed[0]) and "secret-bbb" not in repr(listed[0])
