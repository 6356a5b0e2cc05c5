"""The companies one sandbox core plays, each with its own data, API key, state and event signing.

A request's `Authorization: Bearer <key>` selects the company; each company's
packages, points, prices, notification log and status changes live in its own
`CoreState`, and its status events are signed with its own secret and key id.
A sandbox serving one company without an API key stays open, as it always was.

`SANDBOX_CORE_COMPANIES` (read by sandbox_core/server.py) lists the companies
as a JSON array, inline or in a file (the value is then the file's path):

    [{"data": "sandbox_core/data/core_demo.json", "api_key": "key-1",
      "events_secret": "secret-1", "events_key_id": "demo"},
     {"data": "sandbox_core/data/core_demo2.json", "api_key": "key-2",
      "events_secret": "secret-2", "events_key_id": "demo2"}]

`data` (default: the bundled core_demo.json) and `api_key` per company;
optional `events_url` (default: SANDBOX_CORE_EVENTS_URL), `events_secret` and
`events_key_id` (the tenant slug the bot knows the company by, sent as
X-Encargo-Key-Id). A relative `data` path is taken from the current directory.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox_core.events import EventSink
from sandbox_core.state import CoreState, load_data

_FIELDS = frozenset({"data", "api_key", "events_url", "events_secret", "events_key_id"})


@dataclass(frozen=True)
class CompanyConfig:
    """How one company is served: its data file, the API key that selects it, where its events go."""

    data_path: Path | str | None = None
    api_key: str = ""
    events_url: str = ""
    events_secret: str = ""
    events_key_id: str = ""

    def __repr__(self) -> str:  # the key and secret never reach a log line
        return f"CompanyConfig(data_path={self.data_path!r}, events_key_id={self.events_key_id!r})"


@dataclass(frozen=True)
class ServedCompany:
    """A company being served: its API key, its own state and its own event sink (None: no events)."""

    api_key: str
    state: CoreState
    events: EventSink | None


def serve(configs: Sequence[CompanyConfig]) -> list[ServedCompany]:
    """Load each company's data; ValueError when the set cannot be told apart by key.

    Several companies each need a non-empty API key, all different (the key
    is the only thing that says which company a request is for).
    """
    if not configs:
        raise ValueError("the sandbox core needs at least one company")
    keys = [c.api_key for c in configs]
    if len(configs) > 1 and (not all(keys) or len(set(keys)) != len(keys)):
        raise ValueError("with several companies, each needs its own non-empty api_key")
    return [
        ServedCompany(
            api_key=c.api_key,
            state=CoreState(load_data(c.data_path)),
            events=EventSink(c.events_url, c.events_secret, key_id=c.events_key_id)
            if c.events_url and c.events_secret else None,
        )
        for c in configs
    ]


def select(companies: Sequence[ServedCompany], token: str | None) -> ServedCompany | None:
    """The company whose API key is `token` (compared in constant time); an open single company for any."""
    if len(companies) == 1 and not companies[0].api_key:
        return companies[0]
    if not token:
        return None
    found = None
    for company in companies:  # every key compared, so timing says nothing about which matched
        if hmac.compare_digest(token.encode(), company.api_key.encode()):
            found = company
    return found


def parse_companies(raw: str, events_url: str = "") -> list[CompanyConfig]:
    """The companies of a SANDBOX_CORE_COMPANIES value: a JSON array, or the path of a file holding one.

    `events_url` is the default for companies that name none. ValueError (naming the entry and
    field, never a key) when the value is not such a list.
    """
    text = raw.strip()
    if not text.startswith("["):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"SANDBOX_CORE_COMPANIES: cannot read {text!r} ({exc.strerror})") from None
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"SANDBOX_CORE_COMPANIES is not valid JSON (line {exc.lineno})") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError("SANDBOX_CORE_COMPANIES must be a non-empty JSON array of companies")
    return [_company(i, entry, events_url) for i, entry in enumerate(entries)]


def _company(index: int, entry: Any, events_url: str) -> CompanyConfig:
    where = f"SANDBOX_CORE_COMPANIES[{index}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a JSON object")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(_FIELDS)}")
    for name, value in entry.items():
        if not isinstance(value, str):
            raise ValueError(f"{where}.{name} must be text")
    if not entry.get("api_key", "").strip():
        raise ValueError(f"{where}.api_key is required")
    return CompanyConfig(
        data_path=entry.get("data", "").strip() or None,
        api_key=entry["api_key"].strip(),
        events_url=entry.get("events_url", "").strip() or events_url,
        events_secret=entry.get("events_secret", "").strip(),
        events_key_id=entry.get("events_key_id", "").strip(),
    )
