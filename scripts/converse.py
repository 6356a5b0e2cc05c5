"""Replay conversation scenarios through the whole pipeline and check what the customer would see.

    python scripts/converse.py tests/scenarios/examples.yaml [--json] [--verbose]

A scenario file is a YAML list of conversations (format: tests/scenarios/FORMAT.md):

    - name: short description
      from: "+50370000001"            # the customer's number
      at: "2026-01-06T10:30:00-06:00" # the clock of the first turn
      turns:
        - user: "Hola"
          after: "45s"                # optional: time since the previous turn (s, m, h)
          expect: {intent: greeting, reply_contains: ["rastrear"], escalated: false, ...}

Each turn is posted as a signed Meta webhook whose message timestamp is the
scenario clock (`at` + the `after`s so far), so business hours follow the
scenario; the jobs run in an in-process burst worker, and that turn's replies
are read back from the messages table. No LLM is configured and the sandbox
core serves its bundled demo data on loopback.

Throw-away Redis and PostgreSQL are started (scripts/devservices.py) unless
DATABASE_URL and REDIS_URL are set; with our own services every conversation
starts from empty tables and an empty Redis. With given ones only the
scenario's number is forgotten (its contact, conversations and keys), Redis
logical database 15 and a queue of its own are used (so no other system's
queued work is taken), and an existing demo tenant is left as configured.

Prints one line per failed expectation and, last, `N passed, N failed`
(conversations); `--json` prints a report instead.
Exit status: 0 when every conversation passed, 1 otherwise, 2 on a bad file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file: make the project importable
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402
import yaml  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from psycopg_pool import ConnectionPool  # noqa: E402

from channels import meta_webhook  # noqa: E402
from channels.events import InboundMessage, MessageKind  # noqa: E402
from config import Settings  # noqa: E402
from scripts import devservices  # noqa: E402

EXPECT_KEYS = frozenset({"intent", "reply_contains", "reply_contains_any", "reply_not_contains",
                         "transcript_contains", "escalated", "priority", "location_sent", "opted_out"})
PHONE_NUMBER_ID = "106540352242922"  # the demo tenant's receiving number, unless the given database has one
GIVEN_REDIS_DB = 15  # with a given Redis: this logical database, so no other system's queued work is touched
APP_SECRET = secrets.token_hex(16)  # signs this run's webhooks only
_DURATION = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*[smhd]?)+\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_MARKS = re.compile(r"[*_~]")
_SPACES = re.compile(r"\s+")


class ScenarioError(ValueError):
    """The scenario file is not in the expected format; the message says where."""


# -- the file ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    user: str
    after: timedelta
    expect: dict[str, Any]


@dataclass(frozen=True)
class Conversation:
    name: str
    phone: str
    at: datetime
    turns: tuple[Turn, ...]
    profile_name: str | None = None


def duration(raw: Any, where: str) -> timedelta:
    if raw is None:
        return timedelta(0)
    text = str(raw).strip().lower()
    if not _DURATION.match(text):
        raise ScenarioError(f"{where}: after={raw!r} is not a duration like 45s, 2m, 1h or 1m30s")
    units = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return timedelta(seconds=sum(float(n) * units[u] for n, u in _DURATION_PART.findall(text)))


def load_scenarios(path: Path) -> list[Conversation]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not isinstance(data, list):
        raise ScenarioError(f"{path}: expected a list of conversations")
    found = []
    for n, raw in enumerate(data, 1):
        where = f"{path.name} conversation {n}"
        if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list):
            raise ScenarioError(f"{where}: needs name, from, at and a list of turns")
        try:
            at = datetime.fromisoformat(str(raw.get("at")))
        except ValueError:
            raise ScenarioError(f"{where}: at={raw.get('at')!r} is not an ISO date-time") from None
        if at.tzinfo is None:
            raise ScenarioError(f"{where}: at={raw.get('at')!r} needs a UTC offset")
        phone = "+" + "".join(ch for ch in str(raw.get("from") or "") if ch.isdigit())
        if len(phone) < 9:
            raise ScenarioError(f"{where}: from={raw.get('from')!r} is not a phone number")
        turns = []
        for m, turn in enumerate(raw["turns"], 1):
            if not isinstance(turn, dict) or "user" not in turn:
                raise ScenarioError(f"{where} turn {m}: needs a 'user' text")
            expect = turn.get("expect") or {}
            if not isinstance(expect, dict):
                raise ScenarioError(f"{where} turn {m}: expect must be a mapping")
            unknown = set(expect) - EXPECT_KEYS
            if unknown:
                raise ScenarioError(f"{where} turn {m}: unknown expectation {', '.join(sorted(unknown))}")
            turns.append(Turn(str(turn["user"] if turn["user"] is not None else ""),
                              duration(turn.get("after"), f"{where} turn {m}"), expect))
        found.append(Conversation(str(raw.get("name") or where), phone, at, tuple(turns),
                                  str(raw["name_on_whatsapp"]) if raw.get("name_on_whatsapp") else None))
    return found


# -- matching ----------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Case, accents, WhatsApp marks (* _ ~) and repeated whitespace do not count."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _SPACES.sub(" ", _MARKS.sub("", plain.lower())).strip()


def readable(payload: dict[str, Any]) -> str:
    """What the customer reads of one message: text, interactive body and titles, a location's name/address."""
    kind = payload.get("kind")
    parts: list[str] = []
    if kind == "text":
        parts.append(str(payload.get("body") or ""))
    elif kind == "buttons":
        parts.append(str(payload.get("body") or ""))
        parts += [str(b.get("title") or "") for b in payload.get("buttons") or []]
    elif kind == "list":
        parts.append(str(payload.get("body") or ""))
        parts += [str(r.get("title") or "") for r in payload.get("rows") or []]
    elif kind == "location":
        parts += [str(payload.get(k) or "") for k in ("name", "address")]
    elif kind == "template":
        parts += [str(p) for p in payload.get("body_params") or []]
    return "\n".join(p for p in parts if p)


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@dataclass
class Observed:
    intent: str | None
    replies: list[dict[str, Any]]
    escalated: bool
    priority: str | None
    opted_out: bool

    @property
    def text(self) -> str:
        return "\n".join(readable(p) for p in self.replies)


def check(expect: dict[str, Any], seen: Observed, transcript: str) -> list[str]:
    """The failed expectations of one turn, each as one line."""
    failures = []
    replies, history = normalise(seen.text), normalise(transcript)
    shown = seen.text.replace("\n", " | ")[:300] or "(no reply)"
    if "intent" in expect and seen.intent not in _as_list(expect["intent"]):
        failures.append(f"intent is {seen.intent!r}, expected {' or '.join(_as_list(expect['intent']))}")
    for fragment in _as_list(expect.get("reply_contains", [])):
        if normalise(fragment) not in replies:
            failures.append(f"reply_contains {fragment!r} missing; replies: {shown}")
    wanted = _as_list(expect["reply_contains_any"]) if "reply_contains_any" in expect else []
    if wanted and not any(normalise(f) in replies for f in wanted):
        failures.append(f"reply_contains_any {wanted!r}: none found; replies: {shown}")
    for fragment in _as_list(expect.get("reply_not_contains", [])):
        if normalise(fragment) in replies:
            failures.append(f"reply_not_contains {fragment!r} found; replies: {shown}")
    for fragment in _as_list(expect.get("transcript_contains", [])):
        if normalise(fragment) not in history:
            failures.append(f"transcript_contains {fragment!r} missing from the conversation so far")
    if "escalated" in expect and seen.escalated != bool(expect["escalated"]):
        failures.append(f"escalated is {seen.escalated}, expected {bool(expect['escalated'])}")
    if "priority" in expect and seen.priority != str(expect["priority"]):
        failures.append(f"priority is {seen.priority!r}, expected {expect['priority']!r}")
    if "location_sent" in expect:
        sent = any(p.get("kind") == "location" for p in seen.replies)
        if sent != bool(expect["location_sent"]):
            failures.append(f"location_sent is {sent}, expected {bool(expect['location_sent'])}")
    if "opted_out" in expect and seen.opted_out != bool(expect["opted_out"]):
        failures.append(f"opted_out is {seen.opted_out}, expected {bool(expect['opted_out'])}")
    return failures


# -- the pipeline --------------------------------------------------------------------------------------


@dataclass
class Pipeline:
    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    client: FlaskClient
    own_services: bool
    counter: int = 0
    _vault: Any = field(default=None, repr=False)

    def reset(self, phone: str) -> None:
        """A clean state for this number: empty everything (own services) or forget the number (given ones)."""
        from storage.tenants import ensure_configured_tenant

        if self.own_services:
            with self.pool.connection() as conn:
                tables = [r["tablename"] for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")]
                conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            self.redis.flushdb()
            ensure_configured_tenant(self.pool, self.settings)
        else:
            self._forget(phone)

    def _forget(self, phone: str) -> None:
        from worker.enqueue import conversation_hash

        phone_hash = self._vault.lookup_hash(phone)
        with self.pool.connection() as conn, conn.transaction():
            contact_ids = [r["id"] for r in conn.execute("SELECT id FROM contacts WHERE phone_hash = %s",
                                                          (phone_hash,))]
            if contact_ids:
                conv = "(SELECT id FROM conversations WHERE contact_id = ANY(%s))"
                for table in ("events", "escalations", "messages"):
                    conn.execute(f"DELETE FROM {table} WHERE conversation_id IN {conv}",  # noqa: S608
                                 (contact_ids,))
                conn.execute("DELETE FROM notification_log WHERE contact_id = ANY(%s)", (contact_ids,))
                conn.execute("DELETE FROM conversations WHERE contact_id = ANY(%s)", (contact_ids,))
                conn.execute("DELETE FROM contacts WHERE id = ANY(%s)", (contact_ids,))
        probe = InboundMessage(provider="meta", channel_number=self.settings.meta_phone_number_id, message_id="probe",
                               kind=MessageKind.TEXT, timestamp=0, user_phone=phone)
        key = conversation_hash(self._vault, probe)
        keys = [k for pattern in (f"dialog:*{key}*", f"guard:{key}:*") for k in self.redis.scan_iter(match=pattern)]
        if keys:
            self.redis.delete(*keys)

    def send(self, phone: str, text: str, when: datetime, profile_name: str | None) -> str:
        self.counter += 1
        message_id = f"wamid.CONVERSE{self.counter:06d}{uuid.uuid4().hex[:10]}"
        digits = phone.lstrip("+")
        contact: dict[str, Any] = {"wa_id": digits}
        if profile_name:
            contact["profile"] = {"name": profile_name}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "50300000000",
                         "phone_number_id": self.settings.meta_phone_number_id},
            "contacts": [contact],
            "messages": [{"from": digits, "id": message_id, "timestamp": str(int(when.timestamp())),
                          "type": "text", "text": {"body": text}}],
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
        from worker import runtime
        from worker.main import EncargoWorker

        rt = runtime.current()
        EncargoWorker([rt.queue], connection=rt.redis).work(burst=True, with_scheduler=False,
                                                            logging_level="WARNING")

    def observe(self, phone: str, message_id: str, after_id: int) -> tuple[Observed, int]:
        phone_hash = self._vault.lookup_hash(phone)
        with self.pool.connection() as conn:
            inbound = conn.execute("SELECT route FROM messages WHERE provider_message_id = %s AND direction = 'in'",
                                   (message_id,)).fetchone()
            rows = conn.execute(
                """
                SELECT m.id, m.payload, m.idempotency_key FROM messages m
                JOIN conversations c ON c.id = m.conversation_id JOIN contacts k ON k.id = c.contact_id
                WHERE k.phone_hash = %s AND m.direction = 'out' AND m.id > %s ORDER BY m.id
                """,
                (phone_hash, after_id),
            ).fetchall()
            state = conn.execute(
                """
                SELECT k.opted_out_at IS NOT NULL AS opted_out,
                       (SELECT c.status FROM conversations c WHERE c.contact_id = k.id
                        ORDER BY c.id DESC LIMIT 1) AS status,
                       (SELECT e.priority FROM escalations e JOIN conversations c ON c.id = e.conversation_id
                        WHERE c.contact_id = k.id ORDER BY e.id DESC LIMIT 1) AS priority
                FROM contacts k WHERE k.phone_hash = %s
                """,
                (phone_hash,),
            ).fetchone()
        route = (inbound or {}).get("route") or {}
        replies = [r["payload"] for r in rows if "/part" not in str(r["idempotency_key"] or "")]
        last_id = max([after_id, *(int(r["id"]) for r in rows)])
        state = state or {}
        seen = Observed(route.get("intent"), replies, state.get("status") in ("escalated", "agent"),
                        state.get("priority"), bool(state.get("opted_out")))
        return seen, last_id


@contextmanager
def pipeline(environ: dict[str, str]) -> Iterator[Pipeline]:
    """Services, migrations, the sandbox core, the Flask app and a worker runtime, torn down afterwards."""
    from app import create_app
    from sandbox_core import BackgroundServer, create_sandbox_app
    from storage.crypto import Vault
    from storage.db import open_pool
    from storage.migrate import apply_migrations
    from worker import runtime

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
            rt = runtime.build_runtime(settings, pool_size=2)
            runtime.configure(rt)
            conn = redis.Redis.from_url(redis_url)
            try:
                with app.test_client() as client:
                    yield Pipeline(settings, pool, conn, client, own,
                                   _vault=Vault(settings.phone_encryption_keys, settings.phone_hash_key))
            finally:
                runtime.configure(None)
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
        row = conn.execute("SELECT meta_phone_number_id FROM tenants WHERE slug = 'demo'").fetchone()
    return str(row[0]) if row and row[0] else None


def _other_database(redis_url: str, index: int) -> str:
    """The same Redis server, another logical database ("redis://h:6379/0" -> "redis://h:6379/15")."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{index}", parts.query, parts.fragment))


# -- running -------------------------------------------------------------------------------------------


def run_conversation(pipe: Pipeline, conv: Conversation) -> dict[str, Any]:
    pipe.reset(conv.phone)
    clock, last_id, transcript = conv.at, 0, ""
    turns, failures = [], []
    for n, turn in enumerate(conv.turns, 1):
        clock += turn.after
        message_id = pipe.send(conv.phone, turn.user, clock, conv.profile_name)
        pipe.work()
        seen, last_id = pipe.observe(conv.phone, message_id, last_id)
        transcript = f"{transcript}\n{seen.text}"
        problems = check(turn.expect, seen, transcript)
        failures += [{"turn": n, "user": turn.user, "failure": p} for p in problems]
        turns.append({"user": turn.user, "at": clock.isoformat(), "intent": seen.intent,
                      "replies": [readable(p) for p in seen.replies], "escalated": seen.escalated,
                      "priority": seen.priority, "opted_out": seen.opted_out, "failures": problems})
    return {"name": conv.name, "from": conv.phone, "passed": not failures, "failures": failures, "turns": turns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="replay conversation scenarios through the pipeline")
    parser.add_argument("file", type=Path, help="scenario YAML (see tests/scenarios/FORMAT.md)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every conversation's transcript")
    args = parser.parse_args(argv)
    try:
        conversations = load_scenarios(args.file)
    except ScenarioError as exc:
        print(f"converse: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("rq").setLevel(logging.ERROR)
    try:
        with pipeline(dict(os.environ)) as pipe:
            results = [run_conversation(pipe, conv) for conv in conversations]
    except (devservices.ServiceError, psycopg.Error, redis.RedisError, RuntimeError, OSError) as exc:
        print(f"converse: cannot run the pipeline: {exc}", file=sys.stderr)
        return 2
    passed = sum(r["passed"] for r in results)
    failed = len(results) - passed
    if args.json:
        print(json.dumps({"file": str(args.file), "passed": passed, "failed": failed, "conversations": results},
                         ensure_ascii=False, indent=2))
        return 0 if failed == 0 else 1
    for result in results:
        if args.verbose:
            _print_transcript(result)
        for failure in result["failures"]:
            user = failure["user"] if len(failure["user"]) <= 60 else failure["user"][:57] + "..."
            print(f"FAIL {result['name']} · turn {failure['turn']} ({user!r}): {failure['failure']}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def _print_transcript(result: dict[str, Any]) -> None:
    print(f"=== {result['name']} ({result['from']}) {'ok' if result['passed'] else 'FAILED'}")
    for turn in result["turns"]:
        print(f"> {turn['user'][:200]}   [{turn['intent']}{' · escalated' if turn['escalated'] else ''}]")
        for reply in turn["replies"]:
            print("  < " + reply.replace("\n", "\n    "))
    print()


if __name__ == "__main__":
    sys.exit(main())
