"""CoreClient against the sandbox core over real HTTP, and against local servers that misbehave."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from config import Settings
from core_api_client import (
    Company,
    CoreAuthError,
    CoreBadRequest,
    CoreBadResponse,
    CoreClient,
    CoreUnavailable,
    Package,
    Quote,
    ServicePoint,
)
from sandbox_core import BackgroundServer, create_sandbox_app

API_KEY = "client-test-key"
SV = ZoneInfo("America/El_Salvador")


@pytest.fixture(scope="module")
def core_url() -> Iterator[str]:
    with BackgroundServer(create_sandbox_app(api_key=API_KEY)) as server:
        yield server.url


@pytest.fixture
def client(core_url: str) -> Iterator[CoreClient]:
    with CoreClient(core_url, API_KEY, timeout_s=5) as core:
        yield core


class ScriptedServer:
    """A tiny local HTTP server answering from a script of (status, body) pairs, then the last forever."""

    def __init__(self, *answers: tuple[str, bytes], delay_s: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay_s = delay_s
        self.calls: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            self.calls.append({k: v for k, v in environ.items() if isinstance(v, str)})
            status, body = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if self.delay_s:
            time.sleep(self.delay_s)
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- against the sandbox core ------------------------------------------------------------------------


def test_track_returns_typed_package(client: CoreClient) -> None:
    package = client.track("sv-20260103008921")
    assert isinstance(package, Package)
    assert package.tracking_code == "SV20260103008921"
    assert package.status == "DELIVERED"
    assert (package.origin_point, package.origin_city) == ("san_salvador_centro", "San Salvador")
    assert (package.destination_point, package.destination_city) == ("la_union", "La Unión")
    assert (package.sender.name, package.recipient.name) == ("Juan Pérez", "Carmen Díaz")
    assert package.amount_to_collect == 40.0
    assert package.refund is not None
    assert (package.refund.amount, package.refund.status, package.refund.pickup_point) == (
        40.0,
        "AVAILABLE",
        "san_salvador_centro",
    )
    assert package.eta is None
    assert [h.status for h in package.history] == [
        "RECEIVED_AT_ORIGIN",
        "ARRIVED_AT_DESTINATION",
        "DELIVERED",
    ]
    assert package.history[-1].at == datetime(2026, 1, 5, 16, 30, tzinfo=SV)
    assert package.last_event == package.history[-1]
    assert package.is_party("+50370000005") and package.is_party("7000-0001")
    assert not package.is_party("+50370000002")
    assert "Juan" not in repr(package) and "70000001" not in repr(package)


def test_track_eta_and_unknown_code(client: CoreClient) -> None:
    package = client.track("SV20260106012345")
    assert package is not None and package.eta == datetime(2026, 1, 6, 17, 0, tzinfo=SV)
    assert package.refund is None
    assert client.track("SV00000000000000") is None
    assert client.track("  ") is None


def test_search_by_phone_and_by_name(client: CoreClient) -> None:
    by_phone = client.search(phone="+50370000001")
    assert len(by_phone) == 5
    assert by_phone[0].tracking_code == "SV20260106012345"
    assert all(p.sender.phone == "+50370000001" for p in by_phone)
    assert len(client.search(phone="+50370000001", limit=3)) == 3
    for name in ("M. López", "maria lopez"):
        found = {p.tracking_code for p in client.search(name=name, destination="Santa Ana")}
        assert found == {"SV20260106012345", "SV20260105007834", "SV20260105007823"}
    assert client.search(phone="+50379999999") == []


def test_search_without_criteria_is_bad_request(client: CoreClient) -> None:
    with pytest.raises(CoreBadRequest) as caught:
        client.search()
    assert caught.value.status_code == 400 and caught.value.parameter == "phone"


def test_points_and_point(client: CoreClient) -> None:
    points = client.points()
    assert len(points) == 5 and all(isinstance(p, ServicePoint) for p in points)
    la_union = client.point("la_union")
    assert la_union is not None
    assert (la_union.city, la_union.department, la_union.phone) == ("La Unión", "La Unión", "2604-3322")
    assert la_union.hours == {"mon-fri": ("08:00", "17:30"), "sat": ("08:00", "12:00"), "sun": None}
    assert (la_union.lat, la_union.lng) == (13.3369, -87.8439)
    assert ServicePoint.from_json(la_union.to_json()) == la_union
    assert client.point("nowhere") is None


def test_quotes(client: CoreClient) -> None:
    other = client.quote("San Salvador", "Santa Ana", 8)
    assert other == Quote(cost=8.0, currency="USD", zone="other_departments", delivery_time="1 día hábil")
    assert f"${other.cost:.2f}" == "$8.00"
    within = client.quote("San Salvador", "Soyapango", 3)
    assert (within.cost, within.zone) == (3.0, "within_san_salvador")
    assert client.quote("santa_ana", "san_miguel", 15.5).cost == 12.0


@pytest.mark.parametrize(
    ("origin", "weight", "parameter"), [("San Salvador", -1, "weight"), ("Atlantis", 3, "origin")]
)
def test_bad_quote_is_bad_request_with_the_core_message(
    client: CoreClient, origin: str, weight: float, parameter: str
) -> None:
    with pytest.raises(CoreBadRequest) as caught:
        client.quote(origin, "Santa Ana", weight)
    assert caught.value.status_code == 400
    assert caught.value.parameter == parameter
    assert parameter in caught.value.message


def test_pricing_table_company_policies(client: CoreClient) -> None:
    table = client.pricing_table()
    assert table["pricing"]["zones"]["other_departments"][1] == {"max_lbs": 15, "price": 8.0}
    assert "rural" in table["delivery_times"]
    company = client.company()
    assert company == Company(
        name="Transportes Express El Salvador",
        timezone="America/El_Salvador",
        support_hours={"mon-fri": ("08:00", "18:00"), "sat": ("08:00", "13:00"), "sun": None},
        emergency_phone="+503 2222-3333",
    )
    assert Company.from_json(company.to_json()) == company
    assert "Animales vivos" in client.policies()["prohibited"]


def test_log_notification_round_trip() -> None:
    with (
        BackgroundServer(create_sandbox_app(api_key=API_KEY)) as core,
        CoreClient(core.url, API_KEY) as client,
    ):
        sent_at = datetime(2026, 1, 6, 9, 41, tzinfo=SV)
        client.log_notification("SV20260105008921", "status_update", sent_at)
        logged = httpx.get(
            f"{core.url}/api/notifications/log", headers={"Authorization": f"Bearer {API_KEY}"}
        ).json()["notifications"]
        assert len(logged) == 1
        assert logged[0]["tracking_code"] == "SV20260105008921"
        assert (logged[0]["channel"], logged[0]["type"]) == ("whatsapp", "status_update")
        assert datetime.fromisoformat(logged[0]["sent_at"]) == sent_at
        with pytest.raises(CoreBadRequest) as caught:
            client.log_notification("SV1", "status_update", sent_at)
        assert caught.value.status_code == 404


@pytest.mark.parametrize("key", ["", "wrong-key"])
def test_missing_or_wrong_key_is_auth_error(core_url: str, key: str) -> None:
    with CoreClient(core_url, key) as client, pytest.raises(CoreAuthError) as caught:
        client.track("SV20260106012345")
    assert caught.value.status_code == 401


def test_sends_service_headers_and_from_settings() -> None:
    server = ScriptedServer(("200 OK", b'{"points": []}'))
    with BackgroundServer(server) as fake:
        required = {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x", "PHONE_HASH_KEY": "k",
                    "PHONE_ENCRYPTION_KEY": "A" * 43 + "="}
        settings = Settings.from_env(required, core_api_url=fake.url + "/", core_api_key="k1", core_api_timeout_s=2.0)
        with CoreClient.from_settings(settings) as client:
            assert client.points() == []
    call = server.calls[0]
    assert call["HTTP_AUTHORIZATION"] == "Bearer k1"
    assert call["HTTP_X_SERVICE"] == "whatsapp-chatbot"
    assert call["PATH_INFO"] == "/api/points"


def test_logs_carry_no_phone_or_name(client: CoreClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="core_api_client"):
        client.search(phone="+50370000001", name="María López")
        with pytest.raises(CoreBadRequest):
            client.quote("San Salvador", "Santa Ana", 0)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("core_api_client")]
    assert any("/api/packages/search" in line for line in lines)
    assert not any("70000001" in line or "López" in line or "Lopez" in line for line in lines)


# -- when the core misbehaves -------------------------------------------------------------------------


def test_closed_port_is_unavailable() -> None:
    with CoreClient(f"http://127.0.0.1:{closed_port()}", API_KEY, timeout_s=1, retry_delay_s=0) as client:
        with pytest.raises(CoreUnavailable) as caught:
            client.track("SV20260106012345")
        assert caught.value.status_code is None
        with pytest.raises(CoreUnavailable):
            client.log_notification("SV20260106012345", "status_update", datetime.now(SV))


def test_500_is_unavailable_after_one_retry() -> None:
    server = ScriptedServer(("500 Internal Server Error", b'{"error": "boom"}'))
    with BackgroundServer(server) as fake, CoreClient(fake.url, API_KEY, retry_delay_s=0) as client:
        with pytest.raises(CoreUnavailable) as caught:
            client.points()
        assert caught.value.status_code == 500
        assert len(server.calls) == 2
        with pytest.raises(CoreUnavailable):
            client.log_notification("SV20260106012345", "status_update", datetime.now(SV))
        assert len(server.calls) == 3  # a POST is not retried


def test_one_5xx_then_success_is_retried_transparently() -> None:
    server = ScriptedServer(("503 Service Unavailable", b"{}"), ("200 OK", b'{"points": []}'))
    with BackgroundServer(server) as fake, CoreClient(fake.url, retry_delay_s=0) as client:
        assert client.points() == []
    assert len(server.calls) == 2


def test_timeout_is_unavailable() -> None:
    server = ScriptedServer(("200 OK", b'{"points": []}'), delay_s=1.0)
    with BackgroundServer(server) as fake, CoreClient(fake.url, timeout_s=0.2, retry_delay_s=0) as client:
        started = time.monotonic()
        with pytest.raises(CoreUnavailable):
            client.points()
        assert time.monotonic() - started < 1.5
    assert len(server.calls) == 2


def test_429_is_unavailable_without_retry() -> None:
    server = ScriptedServer(("429 Too Many Requests", b'{"error": "rate_limited"}'))
    with BackgroundServer(server) as fake, CoreClient(fake.url, retry_delay_s=0) as client:
        with pytest.raises(CoreUnavailable) as caught:
            client.company()
    assert caught.value.status_code == 429
    assert len(server.calls) == 1


@pytest.mark.parametrize(
    ("body", "call"),
    [
        (b"<html>not json</html>", lambda c: c.points()),
        (b'{"packages": [{"tracking_code": "SV1"}]}', lambda c: c.search(phone="+50370000001")),
        (b'["not", "an", "object"]', lambda c: c.policies()),
        (b'{"cost": "free"}', lambda c: c.quote("San Salvador", "Santa Ana", 1)),
    ],
)
def test_unreadable_answers_are_bad_response(body: bytes, call: Callable[[CoreClient], object]) -> None:
    server = ScriptedServer(("200 OK", body))
    with BackgroundServer(server) as fake, CoreClient(fake.url) as client, pytest.raises(CoreBadResponse):
        call(client)


def test_bad_base_url_is_unavailable() -> None:
    with CoreClient("not-a-url", timeout_s=1, retry_delay_s=0) as client, pytest.raises(CoreUnavailable):
        client.points()
