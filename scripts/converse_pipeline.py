"""The whole pipeline for replaying scenarios, and one conversation replayed through it.

pipeline() starts what the project needs and tears it down afterwards: throw-away
Redis and PostgreSQL (scripts/devservices.py) unless DATABASE_URL and REDIS_URL
are set, the migrations, the sandbox core serving its bundled demo data on
loopback, the Flask app (test client) and a worker runtime. No LLM is configured.
With our own services every conversation starts from empty tables and an empty
Redis. With given ones only the scenario's number is forgotten (its contact,
conversations and keys), Redis logical database 15 and a queue of its own are
used (so no other system's queued work is taken), and an existing demo tenant is
left as configured.

run_conversation() posts each turn as a signed Meta webhook whose message
timestamp is the scenario clock (`at` + the `after`s so far), so business hours
follow the scenario; the jobs run in an in-process burst worker, and that turn's
replies are read back from the messages table and checked against its
expectations (scripts/converse_checks.py).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels import meta_webhook
from channels.events import InboundMessage, MessageKind
from config import Settings
from runtime.resources import Runtime
from scripts import devservices
from scripts.converse_checks import Observed, check, readable
from scripts.converse_scenarios import Conversation

PHONE_NUMBER_ID = "106540352242922"  # the demo tenant's receiving number, unless the given database has one
GIVEN_REDIS_DB = 15  # with a given Redis: this logical database, so no other system's queued work is touched
APP_SECRET = secrets.token_hex(16)  # signs this run's webhooks only


@dataclass
class Pipeline:
    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    client: FlaskClient
    own_services: bool
    runtime: Runtime
    counter: int = 0
    _vault: Any = field(default=None, repr=False)

    def reset(self, phone: str | None, user_id: str | None = None) -> None:
        """A clean state for this customer: empty everything (own services) or forget them (given ones)."""
        from storage.tenants import ensure_configured_tenant

        if self.own_services:
            with self.pool.connection() as conn:
                # plans are reference data seeded by a migration (0012), kept like the migrations' own record
                tables = [r["tablename"] for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    " AND tablename NOT IN ('schema_migrations', 'plans')")]
                conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            self.redis.flushdb()
            ensure_configured_tenant(self.pool, self.settings)
        else:
            self._forget(phone, user_id)

    def _forget(self, phone: str | None, user_id: str | None) -> None:
        from runtime.enqueue import conversation_hash

        with self.pool.connection() as conn, conn.transaction():
            contact_ids = [r["id"] for r in conn.execute(
                "SELECT id FROM contacts k WHERE (k.phone_hash = %s OR (k.phone_hash IS NULL AND k.bsuid = %s))",
                self._contact_key(phone, user_id))]
            if contact_ids:
                conv = "(SELECT id FROM conversations WHERE contact_id = ANY(%s))"
                for table in ("events", "escalations", "messages"):
                    conn.execute(f"DELETE FROM {table} WHERE conversation_id IN {conv}",  # noqa: S608
                                 (contact_ids,))
                conn.execute("DELETE FROM notification_log WHERE contact_id = ANY(%s)", (contact_ids,))
                conn.execute("DELETE FROM conversations WHERE contact_id = ANY(%s)", (contact_ids,))
                conn.execute("DELETE FROM contacts WHERE id = ANY(%s)", (contact_ids,))
        probe = InboundMessage(provider="meta", channel_number=self.settings.meta_phone_number_id, message_id="probe",
                               kind=MessageKind.TEXT, timestamp=0, user_phone=phone,
                               user_bsuid=None if phone else user_id)
        key = conversation_hash(self._vault, probe)
        keys = [k for pattern in (f"dialog:*{key}*", f"guard:{key}:*") for k in self.redis.scan_iter(match=pattern)]
        if keys:
            self.redis.delete(*keys)

    def _contact_key(self, phone: str | None, user_id: str | None) -> tuple[str | None, str | None]:
        """The customer's contact row: by the phone's keyed hash, or by a username-only customer's user id."""
        return (self._vault.lookup_hash(phone) if phone else None, None if phone else user_id)

    def send(self, phone: str | None, text: str, when: datetime, profile_name: str | None,
             user_id: str | None = None, media: str | None = None) -> str:
        """Post one text as Meta would: from a phone, or (username-only) from a business-scoped user id; with
        `media`, a file of that type instead (`text` its caption; audio is a voice note)."""
        self.counter += 1
        message_id = f"wamid.CONVERSE{self.counter:06d}{uuid.uuid4().hex[:10]}"
        contact: dict[str, Any] = {"wa_id": phone.lstrip("+")} if phone else {"user_id": user_id}
        sender: dict[str, Any] = {"from": phone.lstrip("+")} if phone else {"from_user_id": user_id}
        if profile_name:
            contact["profile"] = {"name": profile_name}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "50300000000",
                         "phone_number_id": self.settings.meta_phone_number_id},
            "contacts": [contact],
            "messages": [{**sender, "id": message_id, "timestamp": str(int(when.timestamp())),
                          **(_media(media, text) if media else {"type": "text", "text": {"body": text}})}],
        }
        body = {"object": "whatsapp_business_account",
                "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}
        raw = json.dumps(body, ensure_ascii=False).encode()
        response = self.client.post("/webhooks/whatsapp", data=raw, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": meta_webhook.sign(APP_SECRET, raw)})
        if response.status_code != 200:
            raise RuntimeError(f"the webhook answered {response.status_code}: {response.get_data(as_text=True)}")
        return message_id

    def work(self) -> None:
        from worker.main import EncargoWorker

        rt = self.runtime
        EncargoWorker([rt.queue], connection=rt.redis, runtime=rt).work(burst=True, with_scheduler=False,
                                                            logging_level="WARNING")

    def observe(self, phone: str | None, message_id: str, after_id: int,
                user_id: str | None = None) -> tuple[Observed, int]:
        key = self._contact_key(phone, user_id)
        with self.pool.connection() as conn:
            inbound = conn.execute("SELECT route FROM messages WHERE provider_message_id = %s AND direction = 'in'",
                                   (message_id,)).fetchone()
            rows = conn.execute(
                """
                SELECT m.id, m.payload, m.idempotency_key FROM messages m
                JOIN conversations c ON c.id = m.conversation_id JOIN contacts k ON k.id = c.contact_id
                WHERE (k.phone_hash = %s OR (k.phone_hash IS NULL AND k.bsuid = %s))
                  AND m.direction = 'out' AND m.id > %s ORDER BY m.id
                """,
                (*key, after_id),
            ).fetchall()
            state = conn.execute(
                """
                SELECT k.opted_out_at IS NOT NULL AS opted_out,
                       (SELECT c.status FROM conversations c WHERE c.contact_id = k.id
                        ORDER BY c.id DESC LIMIT 1) AS status,
                       (SELECT e.priority FROM escalations e JOIN conversations c ON c.id = e.conversation_id
                        WHERE c.contact_id = k.id ORDER BY e.id DESC LIMIT 1) AS priority,
                       (SELECT e.reason FROM escalations e JOIN conversations c ON c.id = e.conversation_id
                        WHERE c.contact_id = k.id ORDER BY e.id DESC LIMIT 1) AS reason,
                       (SELECT count(*) FROM events v JOIN conversations c ON c.id = v.conversation_id
                        WHERE c.contact_id = k.id AND v.kind = 'not_understood') AS not_understood
                FROM contacts k WHERE (k.phone_hash = %s OR (k.phone_hash IS NULL AND k.bsuid = %s))
                """,
                key,
            ).fetchone()
        route = (inbound or {}).get("route") or {}
        replies = [r["payload"] for r in rows if "/part" not in str(r["idempotency_key"] or "")]
        last_id = max([after_id, *(int(r["id"]) for r in rows)])
        state = state or {}
        seen = Observed(route.get("intent"), replies, state.get("status") in ("escalated", "agent"),
                        state.get("priority"), bool(state.get("opted_out")), state.get("reason"),
                        int(state.get("not_understood") or 0))
        return seen, last_id


@contextmanager
def pipeline(environ: dict[str, str]) -> Iterator[Pipeline]:
    """Services, migrations, the sandbox core, the Flask app and a worker runtime, torn down afterwards."""
    from runtime.resources import build_runtime
    from sandbox_core import BackgroundServer, create_sandbox_app
    from storage.crypto import Vault
    from storage.db import open_pool
    from storage.migrate import apply_migrations
    from web.app import create_app

    database_url, redis_url = environ.get("DATABASE_URL", ""), environ.get("REDIS_URL", "")
    own = not (database_url and redis_url)
    base = Path(tempfile.mkdtemp(prefix="encargo-converse-"))
    started: list[devservices.RunningService] = []
    try:
        if own:
            devservices.ensure_installed()
            os.chmod(base, 0o755)  # noqa: S103 - the private PostgreSQL runs as the postgres user when we are root
            started.append(devservices.start_redis(base / "redis", devservices.free_port(), persistent=False))
            started.append(devservices.start_postgres(base / "pg", devservices.free_port()))
            redis_url, database_url = started[0].url, started[1].url
        apply_migrations(database_url)
        number = PHONE_NUMBER_ID if own else _tenant_number(database_url)
        if not own:
            redis_url = _other_database(redis_url, GIVEN_REDIS_DB)
        with BackgroundServer(create_sandbox_app()) as core:
            env = {
                "ENCARGO_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                "PHONE_ENCRYPTION_KEY": environ.get("PHONE_ENCRYPTION_KEY") or Fernet.generate_key().decode(),
                "PHONE_HASH_KEY": environ.get("PHONE_HASH_KEY") or "converse-phone-hash-key",
                "META_APP_SECRET": APP_SECRET, "META_PHONE_NUMBER_ID": number or PHONE_NUMBER_ID,
                "WHATSAPP_PROVIDER": "local", "CORE_API_URL": core.url, "CORE_API_KEY": "",
                "SIMULATOR_ENABLED": "false", "LOG_LEVEL": "WARNING",
                # turns run one at a time in a burst worker: a drain job waiting for a next message only idles
                "MESSAGE_DRAIN_LINGER_S": "0",
                "QUEUE_NAME": "encargo" if own else "encargo-converse",
                "TENANT_SLUG": "demo", "TENANT_NAME": "Transportes Express El Salvador",
            }
            settings = Settings.from_env(env)
            pool = open_pool(database_url, max_size=4, name="converse")
            pool.wait(timeout=30)
            app = create_app(settings)
            if own or not number:  # a given database keeps its own tenant configuration untouched
                from storage.tenants import ensure_configured_tenant

                ensure_configured_tenant(pool, settings)
            rt = build_runtime(settings, pool_size=2)
            conn = redis.Redis.from_url(redis_url)
            try:
                with app.test_client() as client:
                    yield Pipeline(settings, pool, conn, client, own, rt,
                                   _vault=Vault(settings.phone_encryption_keys, settings.phone_hash_key))
            finally:
                rt.close()
                conn.close()
                pool.close()
                app.extensions["db_pool"].close()
                app.extensions["redis"].close()
    finally:
        for service in reversed(started):
            service.stop()
        shutil.rmtree(base, ignore_errors=True)


def _tenant_number(database_url: str) -> str | None:
    """The receiving number the demo tenant of a given database already has (None: no such tenant yet)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT c.number FROM tenant_channels c JOIN tenants t ON t.id = c.tenant_id"
                           " WHERE t.slug = 'demo' AND c.provider = 'meta' ORDER BY c.id LIMIT 1").fetchone()
    return str(row[0]) if row and row[0] else None


def _other_database(redis_url: str, index: int) -> str:
    """The same Redis server, another logical database ("redis://h:6379/0" -> "redis://h:6379/15")."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{index}", parts.query, parts.fragment))


def run_conversation(pipe: Pipeline, conv: Conversation) -> dict[str, Any]:
    """Replay one conversation from a clean state; its report: passed, failures and every turn seen.

    Beside the checks, the report says what the figures of scripts/conversation_figures.py count:
    `escalated` (after some turn the conversation waited for or was with a person), the first case's
    `escalation_reason`, and `not_understood` (the bot's "no entendí" events in the conversation; each turn
    has its own count).
    """
    pipe.reset(conv.phone, conv.user_id)
    clock, last_id, transcript, not_understood = conv.at, 0, "", 0
    turns, failures = [], []
    for n, turn in enumerate(conv.turns, 1):
        clock += turn.after
        message_id = pipe.send(conv.phone, turn.user, clock, conv.profile_name, conv.user_id, turn.media)
        pipe.work()
        seen, last_id = pipe.observe(conv.phone, message_id, last_id, conv.user_id)
        transcript = f"{transcript}\n{seen.text}"
        problems = check(turn.expect, seen, transcript)
        said = f"[{turn.media}] {turn.user}".strip() if turn.media else turn.user
        failures += [{"turn": n, "user": said, "failure": p} for p in problems]
        turns.append({"user": said, "at": clock.isoformat(), "intent": seen.intent,
                      "replies": [readable(p) for p in seen.replies], "escalated": seen.escalated,
                      "priority": seen.priority, "opted_out": seen.opted_out,
                      "escalation_reason": seen.escalation_reason if seen.escalated else None,
                      "not_understood": seen.not_understood - not_understood, "failures": problems})
        not_understood = seen.not_understood
    escalated = [t for t in turns if t["escalated"]]
    return {"name": conv.name, "from": conv.who, "passed": not failures, "failures": failures,
            "escalated": bool(escalated), "escalation_reason": escalated[0]["escalation_reason"] if escalated else None,
            "not_understood": not_understood, "turns": turns}


def _media(media: str, caption: str) -> dict[str, Any]:
    """A Meta media message's content: its type and the file's id, MIME type and caption (audio: a voice note)."""
    mime = {"image": "image/jpeg", "video": "video/mp4", "document": "application/pdf", "sticker": "image/webp",
            "audio": "audio/ogg; codecs=opus"}[media]
    item: dict[str, Any] = {"id": uuid.uuid4().hex[:16], "mime_type": mime}
    if caption and media in ("image", "video", "document"):
        item["caption"] = caption
    if media == "audio":
        item["voice"] = True
    return {"type": media, media: item}


def replay(groups: dict[str, list[Conversation]], prog: str) -> dict[str, list[dict[str, Any]]] | None:
    """Replay groups of conversations through one pipeline, quietly (warnings only on stderr); None, with the
    reason printed as `prog: …` on stderr, when the pipeline cannot run."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("rq").setLevel(logging.ERROR)
    try:
        with pipeline(dict(os.environ)) as pipe:
            return {name: [run_conversation(pipe, conv) for conv in convs] for name, convs in groups.items()}
    except (devservices.ServiceError, psycopg.Error, redis.RedisError, RuntimeError, OSError) as exc:
        print(f"{prog}: cannot run the pipeline: {exc}", file=sys.stderr)
        return None
