"""Meta's account webhooks (other `field`s than "messages") parsed into `AccountNotice` events (issue 17).

Shapes as Meta's webhook references give them (copies in tests/fixtures/, provenance in
tests/fixtures/SOURCES.md). Every one has the WhatsApp Business Account id in `entry.id` and the time in
`entry.time`; none has `metadata.phone_number_id`, so the company is found by the account id later.

- message_template_status_update: `event` (APPROVED, PAUSED, DISABLED, REJECTED, REINSTATED, FLAGGED...),
  `message_template_id`, `message_template_name`, `message_template_language` ("en-US"), `reason` (NONE,
  INVALID_FORMAT... or null), `other_info.title` (FIRST_PAUSE, SECOND_PAUSE, RATE_LIMITING_PAUSE, UNPAUSE);
- message_template_quality_update: `previous_quality_score` / `new_quality_score` (GREEN, YELLOW, RED,
  UNKNOWN) and the template's id, name and language;
- phone_number_quality_update: `display_phone_number`, `event` (FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE in
  older payloads; ONBOARDING, THROUGHPUT_UPGRADE now), `max_daily_conversations_per_business` (TIER_250,
  TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED) or the deprecated `current_limit`;
- business_capability_update: `max_daily_conversations_per_business` (a tier word, or a number in Meta's
  own example) or the deprecated `max_daily_conversation_per_phone` (250 ... 100000, -1 = unlimited);
- account_update: `event` (ACCOUNT_RESTRICTION, ACCOUNT_VIOLATION, DISABLED_UPDATE, ACCOUNT_DELETED...),
  `phone_number`, and the reason in `violation_info`, `restriction_info[]` or `ban_info`.

Robustness: a field of the wrong JSON type reads as absent, never raises (the webhook answers 200 for any
business-level surprise); a notice with nothing to say (no event, no tier, no template) is ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from channels import json_input
from channels.events import AccountNotice

log = logging.getLogger(__name__)

# Meta's `field` -> our topic.
TOPICS = {
    "message_template_status_update": "template_status",
    "message_template_quality_update": "template_quality",
    "phone_number_quality_update": "number_quality",
    "business_capability_update": "capability",
    "account_update": "account",
}
_MAX_WORD = 200
THROUGHPUT_EVENTS = frozenset({"THROUGHPUT_UPGRADE", "ONBOARDING"})


def parse_notice(field_name: str, entry: dict[str, Any], value: Any) -> AccountNotice | None:
    """The notice one change carries, or None for a field we do not handle or a change with nothing in it."""
    topic = TOPICS.get(field_name)
    if topic is None or not isinstance(value, dict):
        return None
    account = _word(entry.get("id")) or ""
    timestamp = json_input.digits_int(entry.get("time"), max_digits=12) or 0
    fields: dict[str, Any] = {}
    if topic in ("template_status", "template_quality"):
        fields = {"template_id": _word(value.get("message_template_id")),
                  "template_name": _word(value.get("message_template_name")),
                  "template_language": _word(value.get("message_template_language"))}
        if topic == "template_status":
            other = value.get("other_info")
            if not isinstance(other, dict):
                other = {}
            reason = _word(value.get("reason"))
            title = _word(other.get("title"))
            if reason == "NONE":  # Meta's word for "no reason" (a pause)
                reason = None
            fields.update(event=_word(value.get("event")) or "", reason=reason or title)
        else:
            new = _word(value.get("new_quality_score"))
            fields.update(event=new or "", quality=new, reason=_word(value.get("previous_quality_score")))
        if not fields["template_name"] or not fields["event"]:
            return None
    elif topic == "number_quality":
        event = _word(value.get("event")) or ""
        # current_limit is the throughput level on THROUGHPUT_UPGRADE / ONBOARDING, not a messaging limit
        current = None if event in THROUGHPUT_EVENTS else _word(value.get("current_limit"))
        fields = {"phone": _word(value.get("display_phone_number")), "event": event,
                  "tier": _word(value.get("max_daily_conversations_per_business")) or current,
                  "quality": _word(value.get("quality_rating"))}
    elif topic == "capability":
        fields = {"tier": _word(value.get("max_daily_conversations_per_business"))
                  or _word(value.get("max_daily_conversation_per_phone"))}
    else:
        fields = {"phone": _word(value.get("phone_number")), "event": _word(value.get("event")) or "",
                  "reason": _account_reason(value)}
    if not (fields.get("event") or fields.get("tier")):
        log.info("ignoring an empty %s notice", field_name)
        return None
    return AccountNotice(provider="meta", topic=topic, account_id=account, timestamp=timestamp,
                         raw={"entry_id": account, "time": timestamp, "field": field_name, "value": value},
                         **fields)


def _account_reason(value: dict[str, Any]) -> str | None:
    violation = value.get("violation_info")
    if isinstance(violation, dict) and _word(violation.get("violation_type")):
        return _word(violation.get("violation_type"))
    restrictions = value.get("restriction_info")
    if isinstance(restrictions, list) and restrictions and isinstance(restrictions[0], dict):
        return _word(restrictions[0].get("restriction_type"))
    ban = value.get("ban_info")
    if isinstance(ban, dict):
        return _word(ban.get("waba_ban_state"))
    return None


def _word(value: Any) -> str | None:
    """Text or an integer as text (ids and limits come either way), at most 200 characters; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:_MAX_WORD]
    return None
