"""Approved WhatsApp templates per tenant, loaded from `notifications/templates.yaml`.

The YAML is the seed: a company's templates are rows its admin edits in the
console (`notifications.tenant_templates`); a kind without a row uses the YAML's.

A proactive notification sent outside the 24-hour window must be an approved
template (CONTRACT §2.4). The YAML mirrors what was approved at Meta (name,
language, body with {{n}} placeholders, quick-reply buttons) plus Twilio's
ContentSid; this module validates it once and turns a spec + the
notification's values into the provider-neutral `channels.outbound.Template`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from channels.outbound import Template

TEMPLATES_PATH = Path(__file__).resolve().parent / "templates.yaml"

# The notifications a template can carry (see notifications.decision).
NOTIFICATION_KINDS = frozenset(
    {"arrived", "refund_available", "returned_to_sender", "pickup_reminder", "in_transit", "received_at_origin"}
)
PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")
MAX_BUTTON_TITLE = 20  # Meta quick-reply title limit
MAX_BUTTONS = 3  # quick replies sendable without extra approval (Twilio in-session limit too)


class TemplateConfigError(ValueError):
    """templates.yaml is malformed; the message says which tenant/template and what is wrong."""


class MissingTemplateValue(KeyError):
    """A value the template needs was not supplied (would be rejected by Meta as 132000)."""


@dataclass(frozen=True)
class TemplateButton:
    """A quick-reply button: `title` as approved; `payload` may contain {value} fields."""

    title: str
    payload: str


@dataclass(frozen=True)
class TemplateSpec:
    """One approved template of one tenant."""

    tenant: str
    name: str
    notification: str
    language: str
    category: str
    body: str
    params: tuple[str, ...]
    buttons: tuple[TemplateButton, ...]
    twilio_content_sid: str | None
    # Sent only when the templates before it for the same notification are paused or disabled at Meta
    # (`fallback: true` in templates.yaml; notifications.template_states picks).
    fallback: bool = False

    def values_needed(self) -> frozenset[str]:
        """Every value name the body parameters and button payloads refer to."""
        names = set(self.params)
        for button in self.buttons:
            names.update(_payload_fields(button.payload))
        return frozenset(names)

    def render(self, values: Mapping[str, str]) -> str:
        """The body as the customer reads it (for previews and the console); raises MissingTemplateValue."""
        filled = _fill_params(self, values)
        return PLACEHOLDER.sub(lambda m: filled[int(m.group(1)) - 1], self.body)


def build_message(spec: TemplateSpec, values: Mapping[str, str]) -> Template:
    """The outbound Template for `spec` filled with `values`; raises MissingTemplateValue if one is missing."""
    params = _fill_params(spec, values)
    payloads = []
    for button in spec.buttons:
        missing = _payload_fields(button.payload) - values.keys()
        if missing:
            raise MissingTemplateValue(f"template {spec.name!r} button needs {sorted(missing)}")
        payloads.append(button.payload.format_map(dict(values)))
    return Template(
        name=spec.name,
        language=spec.language,
        body_params=params,
        button_payloads=tuple(payloads),
        content_sid=spec.twilio_content_sid,
    )


def templates_for(tenant_slug: str) -> list[TemplateSpec]:
    """The approved templates a tenant sends (empty when it has none configured); fallbacks left out."""
    return [spec for spec in _load().get(tenant_slug, ()) if not spec.fallback]


def fallbacks_for(tenant_slug: str, notification: str) -> list[TemplateSpec]:
    """The tenant's fallback templates of a notification, in the file's order (the order they are tried in)."""
    return [spec for spec in _load().get(tenant_slug, ()) if spec.fallback and spec.notification == notification]


def template(tenant_slug: str, name: str) -> TemplateSpec:
    """The tenant's template called `name`; KeyError when it is not configured."""
    for spec in _load().get(tenant_slug, ()):
        if spec.name == name:
            return spec
    raise KeyError(f"tenant {tenant_slug!r} has no template {name!r}")


def template_for_notification(tenant_slug: str, notification: str) -> TemplateSpec | None:
    """The template that carries `notification` for this tenant, or None when none is configured."""
    for spec in _load().get(tenant_slug, ()):
        if spec.notification == notification and not spec.fallback:
            return spec
    return None


def load_file(path: Path) -> dict[str, tuple[TemplateSpec, ...]]:
    """Parse and validate a templates file; raises TemplateConfigError saying what is wrong."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("tenants"), dict):
        raise TemplateConfigError(f"{path.name}: top level must be a mapping with 'tenants'")
    result: dict[str, tuple[TemplateSpec, ...]] = {}
    for tenant, block in raw["tenants"].items():
        entries = (block or {}).get("templates") or []
        if not isinstance(entries, list):
            raise TemplateConfigError(f"{path.name}: tenant {tenant!r}: 'templates' must be a list")
        specs = tuple(parse_spec(str(tenant), entry) for entry in entries)
        names = [s.name for s in specs]
        if len(names) != len(set(names)):
            raise TemplateConfigError(f"tenant {tenant!r}: duplicate template names")
        result[str(tenant)] = specs
    return result


@cache
def _load() -> dict[str, tuple[TemplateSpec, ...]]:
    return load_file(TEMPLATES_PATH)


def parse_spec(tenant: str, entry: Any) -> TemplateSpec:
    """One template (a mapping as in templates.yaml) validated; raises TemplateConfigError saying what is wrong.

    The console's template editor is held to the same rules (notifications.tenant_templates)."""
    if not isinstance(entry, dict):
        raise TemplateConfigError(f"tenant {tenant!r}: each template must be a mapping")
    name = str(entry.get("name") or "")
    where = f"tenant {tenant!r} template {name or '?'!r}"
    for key in ("name", "notification", "language", "body"):
        if not entry.get(key):
            raise TemplateConfigError(f"{where}: '{key}' is required")
    notification = str(entry["notification"])
    if notification not in NOTIFICATION_KINDS:
        raise TemplateConfigError(f"{where}: unknown notification {notification!r}")
    body = str(entry["body"])
    params = tuple(str(p) for p in entry.get("params") or ())
    numbers = sorted({int(n) for n in PLACEHOLDER.findall(body)})
    if numbers != list(range(1, len(params) + 1)):
        raise TemplateConfigError(
            f"{where}: body placeholders {numbers} do not match {len(params)} params (expected 1..{len(params)})"
        )
    buttons = []
    for button in entry.get("buttons") or ():
        title = str((button or {}).get("title") or "")
        payload = str((button or {}).get("payload") or "")
        if not title or not payload:
            raise TemplateConfigError(f"{where}: each button needs a title and a payload")
        if len(title) > MAX_BUTTON_TITLE:
            raise TemplateConfigError(f"{where}: button title {title!r} is longer than {MAX_BUTTON_TITLE}")
        buttons.append(TemplateButton(title=title, payload=payload))
    if len(buttons) > MAX_BUTTONS:
        raise TemplateConfigError(f"{where}: at most {MAX_BUTTONS} quick-reply buttons")
    content_sid = entry.get("twilio_content_sid")
    if content_sid is not None and not re.fullmatch(r"HX[0-9a-f]{32}", str(content_sid)):
        raise TemplateConfigError(f"{where}: twilio_content_sid must look like HX + 32 hex digits")
    return TemplateSpec(
        tenant=tenant,
        name=name,
        notification=notification,
        language=str(entry["language"]),
        category=str(entry.get("category") or "UTILITY"),
        body=body,
        params=params,
        buttons=tuple(buttons),
        twilio_content_sid=str(content_sid) if content_sid else None,
        fallback=bool(entry.get("fallback")),
    )


def _fill_params(spec: TemplateSpec, values: Mapping[str, str]) -> tuple[str, ...]:
    missing = [p for p in spec.params if p not in values]
    if missing:
        raise MissingTemplateValue(f"template {spec.name!r} needs {missing}")
    return tuple(str(values[p]) for p in spec.params)


def _payload_fields(payload: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", payload))
