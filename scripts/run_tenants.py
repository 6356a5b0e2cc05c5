"""`make run`'s second demo company: created, or brought back to .run/env's values, at every start.

The first company is the configured tenant (TENANT_SLUG, META_PHONE_NUMBER_ID, CORE_API_URL,
CORE_API_KEY, INTERNAL_EVENTS_SECRET), which `encargo-migrate` writes. The second is
"Envíos Rápidos Cuscatlán" (sandbox_core/data/core_demo2.json): slug DEMO2_TENANT_SLUG, WhatsApp
number DEMO2_PHONE_NUMBER_ID, the same sandbox core (CORE_API_URL) reached with its own key
DEMO2_CORE_API_KEY, and its own events secret DEMO2_EVENTS_SECRET (its events name the slug in
X-Encargo-Key-Id). Both are written through `storage.tenant_admin`, as an operator would.

    python -m scripts.run_tenants        # with .run/env loaded (scripts/run_services.py runs it)

Exit status 1 with one line when the tenant cannot be written (e.g. the number belongs to another).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import redis
from psycopg_pool import ConnectionPool

from config import Settings
from storage import tenant_admin
from storage.crypto import Vault
from storage.db import open_pool
from storage.tenants import TenantError

ROOT = Path(__file__).resolve().parent.parent
DEMO2_DATA = ROOT / "sandbox_core" / "data" / "core_demo2.json"
DEMO2_BOT_NAME = "Chepito"


def seed_second_company(pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis | None, settings: Settings,
                        env: Mapping[str, str]) -> str:
    """Create or update the second demo company and give it its number; returns what was done."""
    slug = env.get("DEMO2_TENANT_SLUG") or "cuscatlan"
    number = env.get("DEMO2_PHONE_NUMBER_ID") or "100000000000002"
    company = json.loads(DEMO2_DATA.read_text(encoding="utf-8"))["company"]
    fields: dict[str, str | None] = {
        "name": company["name"], "timezone": company["timezone"], "bot_name": DEMO2_BOT_NAME,
        "core_api_url": str(settings.core_api_url), "core_api_key": env.get("DEMO2_CORE_API_KEY") or None,
        "events_secret": env.get("DEMO2_EVENTS_SECRET") or None,
    }
    known = {entry.tenant.slug: entry for entry in tenant_admin.list_tenants(pool)}
    if slug in known:
        tenant_admin.update_tenant(pool, vault, redis_conn, slug, fields)
        done = "updated"
    else:
        tenant_admin.create_tenant(pool, vault, redis_conn, slug=slug, **fields)  # type: ignore[arg-type]
        done = "created"
    entry = known.get(slug)
    if entry is None or not any(c.provider == "meta" and c.number == number for c in entry.channels):
        tenant_admin.add_channel(pool, vault, redis_conn, slug, provider="meta", number=number)
    return f"{company['name']} ({slug}) {done}, number {number}"


def main() -> int:
    settings = Settings.from_env()
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    pool = open_pool(settings.database_url, max_size=1, name="run-tenants")
    redis_conn = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)
    try:
        print(f"demo companies: {seed_second_company(pool, vault, redis_conn, settings, os.environ)}")
    except TenantError as exc:
        print(f"demo companies: the second company was not written: {exc}", file=sys.stderr)
        return 1
    finally:
        pool.close()
        redis_conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
