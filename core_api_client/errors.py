"""What can go wrong when the bot asks the logistics core something.

Callers catch these, never httpx's exceptions. The split follows what the
bot tells the customer: `CoreUnavailable` means "technical problems, try again
in a few minutes"; `CoreAuthError` is a deployment mistake (wrong or revoked
API key) that needs an operator; `CoreBadRequest` means the question itself
was refused (bad weight, unknown city) and its message says why.
"""

from __future__ import annotations


class CoreError(Exception):
    """Any failure talking to the logistics core; `status_code` is the HTTP status when there was one."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class CoreUnavailable(CoreError):
    """The core could not answer: connection refused, timeout, 5xx or 429 (GETs are retried once first)."""


class CoreAuthError(CoreError):
    """The core rejected the bot's API key (HTTP 401 or 403)."""


class CoreBadRequest(CoreError):
    """The core refused the request (a 4xx other than a lookup's 404).

    `message` is the core's own explanation and `parameter` the query or body
    field it blames, when it names one (e.g. "weight").
    """

    def __init__(self, message: str, status_code: int | None = None, parameter: str | None = None) -> None:
        super().__init__(message, status_code)
        self.parameter = parameter


class CoreBadResponse(CoreError):
    """The core answered 2xx with a body this client cannot read (not JSON, or missing fields)."""
