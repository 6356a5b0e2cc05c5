"""HTTP client of the parcel company's logistics core (design section 3.3).

The one place that knows the core's base URL, API key, timeouts and retry
rule. Every method returns typed models or raises a `CoreError` subclass;
httpx exceptions never escape. Idempotent GETs are retried once, after a short
pause, on connection errors, timeouts and 5xx; POSTs are never retried.

Logs carry paths (tracking codes, point ids) and status codes only: search
parameters (phones, names) go in the query string, which is never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote as url_quote

import httpx

from core_api_client.errors import CoreAuthError, CoreBadRequest, CoreBadResponse, CoreError, CoreUnavailable
from core_api_client.models import Company, Package, Quote, ServicePoint

if TYPE_CHECKING:
    from config import Settings

logger = logging.getLogger(__name__)

SERVICE_NAME = "whatsapp-chatbot"
NOTIFICATION_CHANNEL = "whatsapp"
_T = TypeVar("_T")


class CoreClient:
    """Read packages, points, prices and company data from the core; log sent notifications.

    `http` lets a caller share a connection pool (or a test inject a
    transport); a client passed in is not closed by `close()`. `on_timeout`, when given, is called (no
    arguments) for each attempt that timed out: `runtime.cores` counts them for the operations view's alerts;
    its errors are logged, never raised.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        timeout_s: float = 5.0,
        http: httpx.Client | None = None,
        *,
        retry_delay_s: float = 0.2,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._on_timeout = on_timeout
        self._timeout = httpx.Timeout(timeout_s, connect=timeout_s, read=timeout_s)
        self._headers = {"Accept": "application/json", "X-Service": SERVICE_NAME}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=self._timeout)
        self._retry_delay_s = retry_delay_s

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.Client | None = None) -> CoreClient:
        return cls(settings.core_api_url, settings.core_api_key, settings.core_api_timeout_s, http)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> CoreClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- endpoints -------------------------------------------------------------------------

    def track(self, code: str) -> Package | None:
        """The package with this tracking code (the core normalises case, spaces, dashes); None if unknown."""
        if not code.strip():
            return None
        raw = self._get(f"/api/packages/track/{url_quote(code.strip(), safe='')}", allow_404=True)
        return None if raw is None else self._parse(Package.from_json, raw)

    def search(
        self,
        phone: str | None = None,
        name: str | None = None,
        destination: str | None = None,
        limit: int = 10,
    ) -> list[Package]:
        """Packages where `phone` is the sender's or recipient's, or whose parties match `name`.

        `destination` (point id or city) narrows a search; newest first, at most `limit`.
        """
        params: dict[str, str | int] = {"status": "all", "limit": limit}
        for key, value in (("phone", phone), ("name", name), ("destination", destination)):
            if value:
                params[key] = value
        raw = self._get("/api/packages/search", params=params)
        return self._parse(lambda r: [Package.from_json(p) for p in r["packages"]], raw)

    def points(self) -> list[ServicePoint]:
        raw = self._get("/api/points")
        return self._parse(lambda r: [ServicePoint.from_json(p) for p in r["points"]], raw)

    def point(self, point_id: str) -> ServicePoint | None:
        """One service point by id; None if the core does not know it."""
        if not point_id.strip():
            return None
        raw = self._get(f"/api/points/{url_quote(point_id.strip(), safe='')}", allow_404=True)
        return None if raw is None else self._parse(ServicePoint.from_json, raw)

    def quote(self, origin: str, destination: str, weight_lbs: float) -> Quote:
        """The price of sending `weight_lbs` pounds; CoreBadRequest names a bad city or weight."""
        params = {"origin": origin, "destination": destination, "weight": f"{weight_lbs:g}"}
        return self._parse(Quote.from_json, self._get("/api/pricing", params=params))

    def pricing_table(self) -> dict[str, Any]:
        """The price table and delivery times (`{"pricing": ..., "delivery_times": ...}`), for caching."""
        return self._parse(_as_dict, self._get("/api/pricing/table"))

    def company(self) -> Company:
        return self._parse(Company.from_json, self._get("/api/company"))

    def policies(self) -> dict[str, Any]:
        """Unclaimed-package days, refund requirements, prohibited items, ..."""
        return self._parse(_as_dict, self._get("/api/policies"))

    def log_notification(self, tracking_code: str, kind: str, sent_at: datetime, *,
                         details: dict[str, str] | None = None) -> None:
        """Tell the core the bot sent a `kind` notification about a package over WhatsApp.

        `details` adds optional fields (issue 7: notification_id, which makes a repeated report
        idempotent at the core, recipient_role, mode, template, status). Not retried here (a
        POST); raises CoreUnavailable/CoreBadRequest so the caller decides.
        """
        body = {
            **(details or {}),
            "tracking_code": tracking_code,
            "channel": NOTIFICATION_CHANNEL,
            "type": kind,
            "sent_at": sent_at.isoformat(),
        }
        self._check("POST", "/api/notifications/log", self._send("POST", "/api/notifications/log", json=body))

    # -- transport -------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None, allow_404: bool = False) -> Any:
        response = self._send("GET", path, params=params, retry=True)
        return self._check("GET", path, response, allow_404=allow_404)

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        retry: bool = False,
    ) -> httpx.Response:
        """One request, plus one retry for idempotent calls; CoreUnavailable when the core cannot answer."""
        attempts = 2 if retry else 1
        failure = CoreUnavailable("core not called")
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                response = self._http.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=json,
                    headers=self._headers,
                    timeout=self._timeout,
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                kind = type(exc).__name__
                logger.warning("core %s %s failed (attempt %s/%s): %s", method, path, attempt, attempts, kind)
                failure = CoreUnavailable(f"logistics core unreachable ({kind})")
                if isinstance(exc, httpx.TimeoutException):
                    self._timed_out()
            else:
                elapsed_ms = (time.monotonic() - started) * 1000
                logger.debug("core %s %s -> %s in %.0f ms", method, path, response.status_code, elapsed_ms)
                if response.status_code < 500:
                    return response
                logger.warning(
                    "core %s %s answered %s (attempt %s/%s)",
                    method,
                    path,
                    response.status_code,
                    attempt,
                    attempts,
                )
                failure = CoreUnavailable(
                    f"logistics core answered HTTP {response.status_code}", response.status_code
                )
            if attempt < attempts:
                time.sleep(self._retry_delay_s)
        raise failure

    def _timed_out(self) -> None:
        if self._on_timeout is None:
            return
        try:
            self._on_timeout()
        except Exception as exc:  # noqa: BLE001 - counting a timeout must never change the caller's answer
            logger.warning("core timeout not reported: %s", type(exc).__name__)

    def _check(self, method: str, path: str, response: httpx.Response, allow_404: bool = False) -> Any:
        """The decoded JSON of a successful answer; None for an allowed 404; else the matching CoreError."""
        status = response.status_code
        if 200 <= status < 300:
            if status == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise CoreBadResponse(f"core {method} {path} answered non-JSON", status) from None
        if status == 404 and allow_404:
            return None
        body = _error_body(response)
        message = str(body.get("message") or body.get("error") or f"HTTP {status}")
        logger.warning("core %s %s refused with %s (%s)", method, path, status, body.get("error") or "-")
        if status in (401, 403):
            raise CoreAuthError(f"logistics core rejected the API key: {message}", status)
        if status == 429:
            raise CoreUnavailable(f"logistics core is rate limiting: {message}", status)
        if 400 <= status < 500:
            parameter = body.get("parameter")
            raise CoreBadRequest(message, status, str(parameter) if parameter else None)
        raise CoreBadResponse(f"core {method} {path} answered unexpected HTTP {status}", status)

    @staticmethod
    def _parse(builder: Callable[[Any], _T], raw: Any) -> _T:
        """Build a model from JSON; a body missing what the model needs is CoreBadResponse."""
        try:
            return builder(raw)
        except CoreError:
            raise
        except KeyError as exc:
            raise CoreBadResponse(f"core response lacks field {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            # The exception text may quote a value (a name, a phone): only its kind is kept.
            raise CoreBadResponse(f"unexpected core response shape ({type(exc).__name__})") from None


def _as_dict(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError("expected a JSON object")
    return raw


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
