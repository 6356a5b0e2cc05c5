"""What the company's admin sees of WhatsApp's messaging limit on the templates page (/console/templates).

Each business account's tier and the customers it reached outside the 24-hour window in the last 24 hours,
and the notifications held (by the limit, or by a template Meta paused) in the order they will go, with the
reason in the admin's words (`notifications.limits.hold_text`).

Failure policy: database errors raise (the page answers 500); Redis errors too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from console.blueprint import state
from console.database import get_pool
from notifications import ledger, limits
from notifications.tenant_templates import KIND_LABELS


def limit_context(tenant_id: int) -> dict[str, Any]:
    """The template context of the page's "Límite diario de WhatsApp" card."""
    console = state()
    now = datetime.now(UTC)
    with get_pool().connection() as conn:
        accounts = limits.usage(console.desk.redis, conn, console.settings, tenant_id, now)
        held = ledger.held(conn, tenant_id)
        counts = ledger.held_counts(conn, tenant_id)
        row = conn.execute("SELECT timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    zone = ZoneInfo(str(row["timezone"]) if row else console.settings.tenant_timezone)  # type: ignore[call-overload]
    tier = accounts[0].tier if len(accounts) == 1 else None
    full = any(a.tier is not None and a.used >= a.tier for a in accounts)
    several = len(accounts) > 1
    return {
        "accounts": [{"name": (f"Cuenta {a.account_id}" if a.account_id else "Tu número") if several else "",
                      "tier": limits.tier_words(a.tier), "used": f"{a.used:,}",
                      "full": a.tier is not None and a.used >= a.tier,
                      "from_meta": a.source == "webhook"} for a in accounts],
        "held_total": sum(counts.values()),
        "held": [{"kind": KIND_LABELS.get(h.kind, h.kind), "tracking_code": h.tracking_code,
                  "reason": limits.hold_text(h.hold_reason, tier, full=full),
                  "since": h.held_at.astimezone(zone).strftime("%d/%m/%Y %H:%M")} for h in held],
    }
