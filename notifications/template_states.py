"""A template Meta paused or disabled: which template a notification uses instead, or why it waits (issue 17).

Meta's `message_template_status_update` webhook (worker.notices) sets each template's state per company
(`storage.account_notices.set_template_state`): PAUSED, DISABLED, REJECTED, PENDING (under review again),
DELETED/PENDING_DELETION and ARCHIVED make it unusable; APPROVED, REINSTATED and UNARCHIVED usable again;
FLAGGED (at risk, still sendable), LOCKED and IN_APPEAL change nothing by themselves.

"Next allowed": a notification of kind K tries, in order, the company's own template of K (its row, else its
templates.yaml entry: `notifications.tenant_templates.template_for`), then the templates.yaml entries of K
marked `fallback: true`, in the file's order; the first one Meta has not made unusable is sent. When none is
left, the notification is held (`notifications.ledger.hold`, reason 'template_paused', shown to the admin)
and released when Meta approves one of its templates again (`released_on_approval`).

This only concerns templates: inside the 24-hour window the notification goes as an interactive message with
the template's text, which Meta does not review, so a paused template does not stop it.
A send Meta refuses because the template is paused or disabled (132015, 132016; Twilio 63041, 63042), before
its webhook came, marks the template the same way (`refused`) and the notification tries again at once.
Failure policy: database errors raise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import Connection

from channels.outbound import Template
from notifications import ledger
from notifications.templates import TemplateSpec, fallbacks_for
from storage import account_notices, messages

# A template send refused because of the template itself: Meta 132015 "template is paused", 132016 "template is
# disabled"; Twilio 63041 (paused for quality), 63042 (disabled). Its state is set as the webhook would set it.
REFUSED_CODES = {"132015": "PAUSED", "132016": "DISABLED", "63041": "PAUSED", "63042": "DISABLED"}
UNUSABLE = frozenset({"PAUSED", "DISABLED", "REJECTED", "PENDING", "PENDING_DELETION", "DELETED", "ARCHIVED"})
USABLE = frozenset({"APPROVED", "REINSTATED", "UNARCHIVED", "PAUSE_OVER"})
# How long Meta pauses a template (its template-pausing rules: 3 hours the first time, 6 the second, then it is
# disabled). Meta tells the end of a pause too (`other_info.title` UNPAUSE); should that notice not come, the
# scheduler's pass (`end_pauses`) makes the template usable again once the time is over.
PAUSE_DURATIONS_S = {"FIRST_PAUSE": 3 * 3600, "SECOND_PAUSE": 6 * 3600}


def language_code(code: str) -> str:
    """Meta's webhook writes "en-US", our templates (and Meta's send API) "en_US": compare in the latter."""
    return code.strip().replace("-", "_")


def usability(event: str, reason: str | None = None) -> bool | None:
    """Whether a template with this status event may be sent; None when the event says nothing about it.
    A notice titled UNPAUSE (`reason`) ends a pause whatever its event."""
    if (reason or "").upper() == "UNPAUSE":
        return True
    word = event.strip().upper()
    if word in UNUSABLE:
        return False
    if word in USABLE:
        return True
    return None


def choose(conn: Connection[Any], tenant_id: int, tenant_slug: str, spec: TemplateSpec) -> TemplateSpec | None:
    """The template to send for a notification whose own template is `spec`: `spec` itself while Meta allows
    it, else its kind's first usable fallback; None when every one is paused or disabled (hold it)."""
    blocked = account_notices.unusable_templates(conn, tenant_id)
    if not blocked:
        return spec
    for candidate in (spec, *fallbacks_for(tenant_slug, spec.notification)):
        if candidate is not spec and candidate.name == spec.name:
            continue
        if (candidate.name, language_code(candidate.language)) not in blocked:
            return candidate
    return None


def refused(conn: Connection[Any], tenant_id: int, message_id: int, template: Template, code: str,
            title: str) -> None:
    """The provider refused to send `template` because Meta paused or disabled it (`REFUSED_CODES`), before its
    webhook told us: the template is marked unusable now, the refused message set aside (nothing reached the
    customer), so the notification picks the next allowed template or is held."""
    messages.set_aside(conn, message_id, code, title)
    account_notices.set_template_state(conn, tenant_id=tenant_id, name=template.name,
                                       language=language_code(template.language), status=REFUSED_CODES[code],
                                       usable=False, reason=f"send refused: {code}", since=datetime.now(UTC))


def end_pauses(conn: Connection[Any], now: datetime) -> list[int]:
    """Make usable the templates whose timed pause is over, and release the notifications held for them;
    returns the released notifications' ids (the caller queues them)."""
    released: list[int] = []
    for tenant_id in account_notices.end_pauses(conn, PAUSE_DURATIONS_S, now):
        released += ledger.release_held(conn, tenant_id, ledger.HOLD_TEMPLATE_PAUSED)
    return released
