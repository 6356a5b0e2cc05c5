"""The sandbox core over real HTTP: endpoints, auth, search, pricing, logs, status events, the process."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox_core import BackgroundServer, create_sandbox_app
from tests.harness import SANDBOX_ENTRY_POINT, sandbox_process

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sandbox-test-key"
EVENTS_SECRET = "events-test-secret"
JUAN = "+50370000001"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def keyed_core_url() -> Iterator[str]:
    with BackgroundServer(create_sandbox_app(api_key=API_KEY)) as server:
        yield server.url


class EventReceiver:
    """A small local server standing in for the bot's internal events endpoint."""

    def __init__(self, status: str = "204 No Content") -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], bytes]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        self.received.append((headers, body))
        start_response(self.status, [("Content-Length", "0")])
        return [b""]


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=5, **kwargs)


# -- tracking ----------------------------------------------------------------------------------


def test_track_returns_package_with_cities_parties_and_history(core_url: str) -> None:
    response = get(f"{core_url}/api/packages/track/SV20260106012345")
    assert response.status_code == 200
    package = response.json()
    assert package["tracking_code"] == "SV20260106012345"
    assert package["status"] == "IN_TRANSIT"
    assert (package["origin_point"], package["origin_city"]) == ("san_salvador_centro", "San Salvador")
    assert (package["destination_point"], package["destination_city"]) == ("santa_ana", "Santa Ana")
    assert package["sender"] == {"name": "Juan Pérez", "phone": JUAN}
    assert package["recipient"] == {"name": "María López", "phone": "+50370000002"}
    assert package["weight_lbs"] == 8
    assert package["eta"] == "2026-01-06T17:00:00-06:00"
    assert [h["status"] for h in package["history"]] == ["RECEIVED_AT_ORIGIN", "IN_TRANSIT"]


@pytest.mark.parametrize("typed", ["sv20260106012345", "SV-2026-0106-012345", "SV 20260106 012345"])
def test_track_normalises_the_code(core_url: str, typed: str) -> None:
    response = get(f"{core_url}/api/packages/track/{typed}")
    assert response.status_code == 200
    assert response.json()["tracking_code"] == "SV20260106012345"


def test_track_unknown_code_is_json_404(core_url: str) -> None:
    response = get(f"{core_url}/api/packages/track/SV00000000000000")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_unknown_route_is_json_404(core_url: str) -> None:
    response = get(f"{core_url}/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# -- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}])
def test_api_key_required_when_configured(keyed_core_url: str, headers: dict[str, str]) -> None:
    response = get(f"{keyed_core_url}/api/packages/track/SV20260106012345", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "Juan" not in response.text


def test_right_api_key_is_accepted_and_health_is_open(keyed_core_url: str) -> None:
    ok = get(f"{keyed_core_url}/api/points", headers={"Authorization": f"Bearer {API_KEY}"})
    assert ok.status_code == 200
    assert get(f"{keyed_core_url}/health").json() == {"ok": True}


# -- search --------------------------------------------------------------------------------------


def test_search_by_phone_finds_sender_and_recipient_packages_newest_first(core_url: str) -> None:
    response = get(f"{core_url}/api/packages/search", params={"phone": JUAN, "status": "all", "limit": 10})
    codes = [p["tracking_code"] for p in response.json()["packages"]]
    assert codes == [
        "SV20260106012345",
        "SV20260106012890",
        "SV20260105008921",
        "SV20260105007823",
        "SV20260103008921",
    ]
    as_recipient = get(f"{core_url}/api/packages/search", params={"phone": "+50370000002"}).json()
    assert {p["tracking_code"] for p in as_recipient["packages"]} == {"SV20260106012345", "SV20260105007834"}


def test_search_phone_survives_unencoded_plus_and_local_format(core_url: str) -> None:
    raw_plus = get(f"{core_url}/api/packages/search?phone=+50370000001")
    local = get(f"{core_url}/api/packages/search", params={"phone": "7000-0001"})
    assert len(raw_plus.json()["packages"]) == 5
    assert len(local.json()["packages"]) == 5


def test_search_limit_and_status_filter(core_url: str) -> None:
    limited = get(f"{core_url}/api/packages/search", params={"phone": JUAN, "limit": 2}).json()
    assert [p["tracking_code"] for p in limited["packages"]] == ["SV20260106012345", "SV20260106012890"]
    delivered = get(f"{core_url}/api/packages/search", params={"phone": JUAN, "status": "DELIVERED"}).json()
    assert [p["tracking_code"] for p in delivered["packages"]] == ["SV20260103008921"]


@pytest.mark.parametrize("name", ["M. López", "maria lopez", "MARÍA LÓPEZ", "López"])
def test_search_by_name_matches_initials_and_accents(core_url: str, name: str) -> None:
    response = get(f"{core_url}/api/packages/search", params={"name": name, "destination": "Santa Ana"})
    codes = {p["tracking_code"] for p in response.json()["packages"]}
    assert codes == {"SV20260106012345", "SV20260105007834", "SV20260105007823"}


def test_search_by_name_respects_destination(core_url: str) -> None:
    by_point = get(
        f"{core_url}/api/packages/search", params={"name": "maria lopez", "destination": "santa_ana"}
    )
    assert len(by_point.json()["packages"]) == 3
    elsewhere = get(
        f"{core_url}/api/packages/search", params={"name": "maria lopez", "destination": "La Unión"}
    )
    assert elsewhere.json()["packages"] == []
    nobody = get(f"{core_url}/api/packages/search", params={"name": "M."})
    assert nobody.json()["packages"] == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({}, "phone"), ({"phone": JUAN, "limit": "x"}, "limit"), ({"phone": JUAN, "limit": "0"}, "limit")],
)
def test_search_bad_parameters_are_400(core_url: str, params: dict[str, str], parameter: str) -> None:
    response = get(f"{core_url}/api/packages/search", params=params)
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter


# -- points, company, policies --------------------------------------------------------------------


def test_points_and_one_point(core_url: str) -> None:
    points = get(f"{core_url}/api/points").json()["points"]
    assert [p["id"] for p in points] == [
        "san_salvador_centro",
        "soyapango",
        "santa_ana",
        "la_union",
        "san_miguel",
    ]
    santa_ana = get(f"{core_url}/api/points/santa_ana").json()
    assert santa_ana["address"] == "Calle Libertad esq. 10ª Av. Norte"
    assert santa_ana["hours"]["sun"] is None
    assert get(f"{core_url}/api/points/nowhere").status_code == 404


def test_company_and_policies(core_url: str) -> None:
    company = get(f"{core_url}/api/company").json()
    assert company == {
        "name": "Transportes Express El Salvador",
        "timezone": "America/El_Salvador",
        "support_hours": {"mon-fri": ["08:00", "18:00"], "sat": ["08:00", "13:00"], "sun": None},
        "emergency_phone": "+503 2222-3333",
    }
    assert get(f"{core_url}/api/policies").json()["unclaimed_days"] == 15


# -- pricing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "destination", "weight", "cost", "zone", "delivery_time"),
    [
        ("San Salvador", "Santa Ana", "8", 8.0, "other_departments", "1 día hábil"),
        ("san_salvador_centro", "soyapango", "3", 3.0, "within_san_salvador", None),
        ("Soyapango", "San Salvador", "5", 3.0, "within_san_salvador", None),
        ("San Salvador", "La Union", "31", 18.0, "other_departments", "1-2 días hábiles"),
        ("Santa Ana", "San Salvador", "15", 8.0, "other_departments", "1 día hábil"),
        ("San Salvador", "Usulután", "2.5", 5.0, "other_departments", "1-2 días hábiles"),
    ],
)
def test_pricing_by_zone_and_weight(
    core_url: str,
    origin: str,
    destination: str,
    weight: str,
    cost: float,
    zone: str,
    delivery_time: str | None,
) -> None:
    response = get(
        f"{core_url}/api/pricing", params={"origin": origin, "destination": destination, "weight": weight}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["cost"], body["currency"], body["zone"]) == (cost, "USD", zone)
    if delivery_time is not None:
        assert body["delivery_time"] == delivery_time
    else:
        assert body["delivery_time"].startswith("Mismo día")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"origin": "San Salvador", "destination": "Santa Ana"}, "weight"),
        ({"origin": "San Salvador", "destination": "Santa Ana", "weight": "heavy"}, "weight"),
        ({"origin": "San Salvador", "destination": "Santa Ana", "weight": "-2"}, "weight"),
        ({"origin": "San Salvador", "destination": "Santa Ana", "weight": "nan"}, "weight"),
        ({"destination": "Santa Ana", "weight": "3"}, "origin"),
        ({"origin": "San Salvador", "destination": "Atlantis", "weight": "3"}, "destination"),
    ],
)
def test_pricing_bad_parameters_name_the_parameter(
    core_url: str, params: dict[str, str], parameter: str
) -> None:
    response = get(f"{core_url}/api/pricing", params=params)
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter
    assert parameter in response.json()["message"]


def test_pricing_table_has_zones_and_delivery_times(core_url: str) -> None:
    table = get(f"{core_url}/api/pricing/table").json()
    assert table["pricing"]["zones"]["within_san_salvador"][0] == {"max_lbs": 5, "price": 3.0}
    assert table["delivery_times"]["Santa Ana"] == "1 día hábil"


# -- notification log -------------------------------------------------------------------------------


def test_notification_log_round_trip_and_validation() -> None:
    with BackgroundServer(create_sandbox_app()) as server:
        url = f"{server.url}/api/notifications/log"
        first = httpx.post(
            url,
            json={
                "package_id": "sv20260105008921",
                "channel": "whatsapp",
                "type": "status_update",
                "sent_at": "2026-01-06T09:41:00-06:00",
            },
        )
        assert first.status_code == 201
        second = httpx.post(
            url, json={"tracking_code": "SV20260106012345", "channel": "whatsapp", "type": "reminder"}
        )
        assert second.json()["id"] != first.json()["id"]
        logged = get(url).json()["notifications"]
        assert [(n["tracking_code"], n["type"]) for n in logged] == [
            ("SV20260105008921", "status_update"),
            ("SV20260106012345", "reminder"),
        ]
        assert logged[0]["sent_at"] == "2026-01-06T09:41:00-06:00"
        assert (
            httpx.post(url, json={"channel": "whatsapp", "type": "x"}).json()["parameter"] == "tracking_code"
        )
        bad_time = {
            "tracking_code": "SV20260106012345",
            "channel": "whatsapp",
            "type": "x",
            "sent_at": "ayer",
        }
        assert httpx.post(url, json=bad_time).json()["parameter"] == "sent_at"
        unknown = {"tracking_code": "SV1", "channel": "whatsapp", "type": "x"}
        assert httpx.post(url, json=unknown).status_code == 404
        assert len(get(url).json()["notifications"]) == 2


# -- demo control: status changes and signed events -------------------------------------------------


def test_status_change_updates_package_and_posts_signed_event() -> None:
    receiver = EventReceiver()
    with BackgroundServer(receiver) as events:
        app = create_sandbox_app(events_url=f"{events.url}/internal/events", events_secret=EVENTS_SECRET)
        with BackgroundServer(app) as core:
            before = time.time()
            response = httpx.post(
                f"{core.url}/sandbox/packages/sv-20260106012345/status",
                json={"status": "ARRIVED_AT_DESTINATION", "note": "Listo para retirar en Santa Ana"},
            )
            assert response.status_code == 200
            package = response.json()
            assert package["status"] == "ARRIVED_AT_DESTINATION"
            assert package["event_delivered"] is True
            last = package["history"][-1]
            assert (last["status"], last["point"], last["note"]) == (
                "ARRIVED_AT_DESTINATION",
                "santa_ana",
                "Listo para retirar en Santa Ana",
            )
            assert last["at"].endswith("-06:00")
            tracked = get(f"{core.url}/api/packages/track/SV20260106012345").json()
            assert tracked["status"] == "ARRIVED_AT_DESTINATION"
            assert len(tracked["history"]) == 3

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    timestamp = headers["X-Encargo-Timestamp"]
    assert before - 5 <= int(timestamp) <= time.time() + 5
    expected = hmac.new(EVENTS_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Encargo-Signature"], f"sha256={expected}")
    event = json.loads(body)
    assert event["type"] == "package.status_changed"
    assert (event["tracking_code"], event["status"]) == ("SV20260106012345", "ARRIVED_AT_DESTINATION")
    assert event["occurred_at"] == last["at"]
    assert len(event["event_id"]) == 36


@pytest.mark.parametrize("receiver_status", ["500 Internal Server Error", None])
def test_undeliverable_event_is_reported_not_raised(receiver_status: str | None) -> None:
    if receiver_status is None:
        events_url = f"http://127.0.0.1:{closed_port()}/internal/events"
        check = _status_change_result(events_url)
    else:
        with BackgroundServer(EventReceiver(receiver_status)) as events:
            check = _status_change_result(f"{events.url}/internal/events")
    assert check.status_code == 200
    assert check.json()["event_delivered"] is False
    assert check.json()["status"] == "DELIVERED"


def _status_change_result(events_url: str) -> httpx.Response:
    with BackgroundServer(create_sandbox_app(events_url=events_url, events_secret=EVENTS_SECRET)) as core:
        return httpx.post(
            f"{core.url}/sandbox/packages/SV20260105008921/status", json={"status": "DELIVERED"}
        )


def test_status_change_without_events_and_bad_requests(core_url: str) -> None:
    with BackgroundServer(create_sandbox_app(api_key=API_KEY)) as core:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        url = f"{core.url}/sandbox/packages/SV20260106012890/status"
        assert httpx.post(url, json={"status": "IN_TRANSIT"}).status_code == 401
        ok = httpx.post(url, json={"status": "IN_TRANSIT", "note": "Salió hacia San Miguel"}, headers=auth)
        assert ok.json()["event_delivered"] is None
        assert ok.json()["history"][-1]["point"] is None
        assert httpx.post(url, json={"status": "llegó"}, headers=auth).json()["parameter"] == "status"
        assert httpx.post(url, json={"status": "IN_TRANSIT", "point": "x"}, headers=auth).status_code == 400
        unknown = f"{core.url}/sandbox/packages/SV1/status"
        assert httpx.post(unknown, json={"status": "IN_TRANSIT"}, headers=auth).status_code == 404
    # The shared read-only core keeps its own copy of the data.
    assert get(f"{core_url}/api/packages/track/SV20260106012890").json()["status"] == "RECEIVED_AT_ORIGIN"


def test_custom_data_file(tmp_path: Path) -> None:
    data = json.loads((ROOT / "sandbox_core" / "data" / "core_demo.json").read_text(encoding="utf-8"))
    data["packages"] = data["packages"][:1]
    path = tmp_path / "core.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with BackgroundServer(create_sandbox_app(data_path=path)) as core:
        found = get(f"{core.url}/api/packages/search", params={"phone": JUAN}).json()["packages"]
    assert [p["tracking_code"] for p in found] == ["SV20260106012345"]


# -- the process -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_console_entry_point_serves_with_env_settings(tmp_path: Path) -> None:
    port = closed_port()
    env = {**os.environ, "SANDBOX_CORE_PORT": str(port), "CORE_API_KEY": API_KEY, "LOG_LEVEL": "INFO"}
    env.pop("SANDBOX_CORE_DATA", None)
    stderr_path = tmp_path / "stderr.log"
    with sandbox_process(env, port, stderr_path) as base:
        url = f"{base}/api/packages/track/SV20260106012345"
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).status_code == 200
    log = stderr_path.read_text()
    assert "sandbox core listening" in log and "sandbox core stopped" in log
    assert API_KEY not in log


def test_entry_point_rejects_bad_port() -> None:
    env = {**os.environ, "SANDBOX_CORE_PORT": "eighty"}
    done = subprocess.run(SANDBOX_ENTRY_POINT, cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"SANDBOX_CORE_PORT" in done.stderr
