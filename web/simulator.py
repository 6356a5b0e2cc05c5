"""The WhatsApp simulator: a page and a small JSON API to chat with the bot as a customer.

Development only (the factory registers it when `settings.simulator_enabled`,
which is off in production). A message typed in the page is turned into the
webhook payload Meta's Cloud API would send, signed with the app secret and
POSTed over HTTP to this same server's `/webhooks/whatsapp`, so it goes
through the real webhook, queue, worker and transport. The replies are read
back from the `messages` table (the source of truth; the local transport's
pub/sub notice is not needed). The server must answer two requests at once
(gunicorn gthread, or Werkzeug threaded): the API waits for its own webhook.

Several companies: the page lists every active tenant with a Meta number
(`tenant_channels`) and the customer picks which one to write to; a message is
posted with that company's phone_number_id, and the chat shows only that
company's conversation with the customer (the same customer may write to both).
`company` is a tenant slug; without it, the configured tenant (TENANT_SLUG).

Endpoints:
- GET  /simulator                      the page
- GET  /simulator/api/companies        the companies one can write to: slug, name, number
- POST /simulator/api/send             {"from", "company"?, "name"?, one of "text" | "reply" | "location"}
- POST /simulator/api/media            multipart: from, company?, name?, caption?, voice? ("1": a voice note) and
                                       one or more `file`s: each file one webhook, one right after the other (an
                                       album), described as Meta describes a customer's file (web/simulator_files.py)
- GET  /simulator/api/messages         ?phone=+503...&company=<slug>&after=<message id>
- POST /simulator/api/reset            {"from", "company"?}: close the open conversation, forget dialog state
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request, url_for
from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from werkzeug.exceptions import RequestEntityTooLarge

from channels import limits, meta_webhook
from channels.events import InboundMessage, MessageKind
from channels.outbound import OutboundMessage, message_from_dict, message_to_dict
from config import Settings
from runtime import media_links
from runtime.enqueue import conversation_hash
from storage.crypto import Vault
from web import body_limit, simulator_files

log = logging.getLogger(__name__)

bp = Blueprint(
    "simulator", __name__, url_prefix="/simulator",
    template_folder="templates", static_folder="static", static_url_path="/static",
)

DEFAULT_NUMBER = "+50370000001"
DEMO_NUMBERS = tuple(f"+5037000000{i}" for i in range(1, 10))
TEXT_MAX = 4096
NAME_MAX = 100
REPLY_ID_MAX = 256
REPLY_TITLE_MAX = 100
PAGE_SIZE = 500
WEBHOOK_TIMEOUT_S = 5.0
# Dialog state lives under this prefix; a key belongs to a customer when one of its ':' segments
# is the customer's phone hash (or its 32-character prefix) or the conversation hash of runtime.enqueue.
DIALOG_KEYS = "dialog:*"
# The display number Meta puts in metadata; nothing reads it, the phone_number_id routes the message.
SIMULATED_DISPLAY_NUMBER = "50300000000"

_NUMBER = re.compile(r"[1-9]\d{7,14}")
_NUMBER_PUNCTUATION = re.compile(r"[\s\-().]")
_PART_KEY = re.compile(r"^(?P<parent>.+)/part(?P<part>\d+)$")


class BadRequest(ValueError):
    """The API's input is invalid; the message is sent back with a 400."""


@dataclass(frozen=True)
class Company:
    """A company the simulator can write to: its tenant slug and name, and the number it receives on."""

    slug: str
    name: str
    number: str  # Meta phone_number_id


@dataclass(frozen=True)
class _State:
    vault: Vault


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["settings"]
    app.extensions["simulator"] = _State(Vault(settings.phone_encryption_keys, settings.phone_hash_key))
    app.register_blueprint(bp)
    app.register_blueprint(simulator_files.bp)  # issue 17: the customer's files and the pretend media host
    body_limit.limit_path(app, simulator_files.UPLOAD_PATH, simulator_files.UPLOAD_MAX_BYTES)
    log.info("simulator enabled at /simulator")


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


@bp.errorhandler(simulator_files.Refused)
def _refused(exc: simulator_files.Refused) -> tuple[Response, int]:
    return jsonify(error=exc.message), exc.status


@bp.get("")
def page() -> str:
    companies = _companies()
    return render_template("simulator.html", default_number=DEFAULT_NUMBER, demo_numbers=DEMO_NUMBERS,
                           company=companies[0].name, companies=companies)


@bp.get("/api/companies")
def companies() -> Response:
    return jsonify(companies=[{"slug": c.slug, "name": c.name, "number": c.number} for c in _companies()])


@bp.post("/api/send")
def send() -> tuple[Response, int]:
    """Build, sign and post one customer message to our own webhook; answers with the webhook's status."""
    data = _json_body()
    phone = _phone(data.get("from"))
    name = _name(data.get("name"))
    content = _content(data)
    company = _company(data.get("company"))
    return _deliver(company, phone, name, "wamid.SIM" + uuid.uuid4().hex, content)


@bp.post("/api/media")
def send_media() -> tuple[Response, int]:
    """The customer's files: each kept for the worker to download (web/simulator_files.py) and posted as its
    own webhook right after the previous one, with its own id and timestamp, as WhatsApp sends an album; the
    caption goes with the first. Answers with the message ids (502 at the first webhook that failed)."""
    request.max_content_length = simulator_files.UPLOAD_MAX_BYTES
    try:
        form, files = request.form, request.files.getlist("file")
    except RequestEntityTooLarge:
        raise simulator_files.Refused("Eso pesa demasiado: WhatsApp permite hasta 100 MB por documento.",
                                      413) from None
    phone = _phone(form.get("from"))
    name = _name(form.get("name"))
    company = _company(form.get("company"))
    caption = simulator_files.caption_of(form.get("caption"))
    uploads = simulator_files.read_uploads(files, voice=form.get("voice") in ("1", "true"))
    sent: list[str] = []
    for position, upload in enumerate(uploads):
        message_id = "wamid.SIM" + uuid.uuid4().hex
        media_id = simulator_files.keep(current_app.extensions["redis"], upload, message_id)
        content = simulator_files.message_content(upload, media_id, caption if position == 0 else None)
        answer, status = _deliver(company, phone, name, message_id, content)
        if status != 200:
            return jsonify({**answer.get_json(), "message_ids": sent}), status
        sent.append(message_id)
    return jsonify(message_ids=sent, status=200), 200


def _deliver(company: Company, phone: str, name: str | None, message_id: str,
             content: dict[str, Any]) -> tuple[Response, int]:
    """Build, sign and post one Meta message object to our own webhook; answers with the webhook's status."""
    message: dict[str, Any] = {"from": phone.removeprefix("+"), "id": message_id,
                               "timestamp": str(int(time.time()))}
    message.update(content)
    settings = _settings()
    raw = json.dumps(_webhook_payload(company.number, phone, name, message), ensure_ascii=False).encode()
    url = request.host_url.rstrip("/") + "/webhooks/whatsapp"
    headers = {"Content-Type": "application/json",
               "X-Hub-Signature-256": meta_webhook.sign(settings.meta_app_secret, raw)}
    try:
        answer = httpx.post(url, content=raw, headers=headers, timeout=WEBHOOK_TIMEOUT_S)
    except httpx.HTTPError as exc:
        log.warning("simulator could not reach its own webhook: %s", type(exc).__name__)
        return jsonify(error=f"the webhook at {url} did not answer ({type(exc).__name__})",
                       message_id=message_id, status=None), 502
    if not answer.is_success:
        detail = answer.text[:300]
        return jsonify(error=f"the webhook answered {answer.status_code}: {detail}",
                       message_id=message_id, status=answer.status_code), 502
    return jsonify(message_id=message_id, status=answer.status_code), 200


@bp.get("/api/messages")
def messages() -> Response:
    """The customer's messages with one company (both directions, all conversations) above `after`, oldest first."""
    phone = _phone(request.args.get("phone"))
    company = _company(request.args.get("company"))
    try:
        after = int(request.args.get("after") or 0)
    except ValueError:
        raise BadRequest("'after' must be a message id (a whole number)") from None
    phone_hash = _vault().lookup_hash(phone)
    with _pool().connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT m.id, m.direction, m.kind, m.body, m.payload, m.status, m.created_at, m.idempotency_key,
                   m.provider_message_id, m.conversation_id, c.status AS conversation_status
            FROM messages m
            JOIN conversations c ON c.id = m.conversation_id
            JOIN contacts ct ON ct.id = c.contact_id
            JOIN tenants t ON t.id = ct.tenant_id
            WHERE ct.phone_hash = %s AND t.slug = %s AND m.id > %s
            ORDER BY m.id
            LIMIT %s
            """,
            (phone_hash, company.slug, after, PAGE_SIZE),
        ).fetchall()
        parents = _part_parents(cur, [r["idempotency_key"] for r in rows])
        files = _agent_files(cur, [r["id"] for r in rows if r["direction"] == "out" and r["kind"] == "media"])
    return jsonify(messages=[{**_message_json(row, parents), **files.get(row["id"], {}), **_customer_file(row)}
                             for row in rows])


def _customer_file(row: dict[str, Any]) -> dict[str, str]:
    """A customer's file as their own phone shows it: the simulator's copy (while it keeps it), by message."""
    if row["direction"] != "in" or row["kind"] != "media" or not row["provider_message_id"]:
        return {}
    return {"file_url": url_for("simulator_files.customer_file", wamid=row["provider_message_id"])}


def _agent_files(cur: Cursor[dict[str, Any]], message_ids: list[int]) -> dict[int, dict[str, str]]:
    """An agent's photo or PDF as the customer's phone shows it (issue 17): the public signed link of ours the
    provider would fetch it from (runtime.media_links), so the simulator draws the picture."""
    if not message_ids:
        return {}
    found = cur.execute("SELECT id, tenant_id, message_id, filename, media_type FROM media"
                        " WHERE message_id = ANY(%s) AND direction = 'out' AND status = 'stored'",
                        (message_ids,)).fetchall()
    now = time.time()
    return {int(f["message_id"]): {"file_url": media_links.public_path(_settings(), int(f["id"]), int(f["tenant_id"]),
                                                                       f["filename"], now),
                                   "file_type": str(f["media_type"]), "file_name": str(f["filename"] or "")}
            for f in found}


@bp.post("/api/reset")
def reset() -> Response:
    """Close the customer's open conversation with one company and drop that dialog state: the next message
    to that company starts afresh (a conversation with another company is left as it is)."""
    data = _json_body()
    phone = _phone(data.get("from"))
    company = _company(data.get("company"))
    vault = _vault()
    phone_hash = vault.lookup_hash(phone)
    with _pool().connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        closed = cur.execute(
            """
            UPDATE conversations SET status = 'closed'
            WHERE status <> 'closed'
              AND contact_id IN (SELECT ct.id FROM contacts ct JOIN tenants t ON t.id = ct.tenant_id
                                 WHERE ct.phone_hash = %s AND t.slug = %s)
            RETURNING id
            """,
            (phone_hash, company.slug),
        ).fetchall()
    settings = _settings()
    wanted = {_conversation_hash(vault, "meta", company.number, phone)}
    if company.slug == settings.tenant_slug:  # the configured tenant's Twilio number and older key forms
        wanted |= {phone_hash, phone_hash[:32]}
        if settings.twilio_whatsapp_number:
            wanted.add(_conversation_hash(vault, "twilio", settings.twilio_whatsapp_number, phone))
    deleted = _delete_dialog_keys(current_app.extensions["redis"], wanted)
    return jsonify(closed_conversations=[r["id"] for r in closed], deleted_keys=deleted)


def _conversation_hash(vault: Vault, provider: str, number: str, phone: str) -> str:
    probe = InboundMessage(provider=provider, channel_number=number, message_id="reset",
                           kind=MessageKind.TEXT, timestamp=0, user_phone=phone)
    key = conversation_hash(vault, probe)
    assert key is not None
    return key


def _delete_dialog_keys(conn: redis.Redis, wanted: set[str]) -> int:
    """Delete dialog keys with a segment in `wanted`. Redis errors are reported, never raised."""
    try:
        keys = [k for k in conn.scan_iter(match=DIALOG_KEYS, count=500)
                if wanted & set(k.decode(errors="replace").split(":"))]
        return int(conn.delete(*keys)) if keys else 0
    except redis.RedisError as exc:
        log.warning("simulator reset could not clear dialog state: %s", type(exc).__name__)
        return 0


def _companies() -> list[Company]:
    """Active tenants with a Meta number, the configured one first; just the configured one when none has."""
    settings = _settings()
    with _pool().connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT DISTINCT ON (t.id) t.slug, t.name, c.number FROM tenants t
            JOIN tenant_channels c ON c.tenant_id = t.id AND c.provider = 'meta'
            WHERE t.status = 'active' ORDER BY t.id, c.id
            """
        ).fetchall()
    found = sorted((Company(r["slug"], r["name"], r["number"]) for r in rows),
                   key=lambda c: c.slug != settings.tenant_slug)  # stable: the rest keep the tenants' order
    return found or [Company(settings.tenant_slug, settings.tenant_name, settings.meta_phone_number_id)]


def _company(value: Any) -> Company:
    """The company a request names by slug (none: the first, i.e. the configured one); BadRequest if unknown."""
    known = _companies()
    if value is None or value == "":
        return known[0]
    if not isinstance(value, str):
        raise BadRequest("'company' must be a company's slug")
    for company in known:
        if company.slug == value:
            return company
    raise BadRequest(f"no company {value!r} to write to (one of {', '.join(c.slug for c in known)})")


def _webhook_payload(number: str, phone: str, name: str | None, message: dict[str, Any]) -> dict[str, Any]:
    """The body Meta's Cloud API posts for one inbound message to the company number `number`."""
    digits = phone.removeprefix("+")
    contact: dict[str, Any] = {"profile": {"name": name} if name else {}, "wa_id": digits}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": SIMULATED_DISPLAY_NUMBER,
                     "phone_number_id": number},
        "contacts": [contact],
        "messages": [message],
    }
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "simulator", "changes": [{"value": value, "field": "messages"}]}]}


def _content(data: dict[str, Any]) -> dict[str, Any]:
    """The type-specific part of a Meta message object, from exactly one of text / reply / location."""
    given = [k for k in ("text", "reply", "location") if data.get(k) is not None]
    if len(given) != 1:
        raise BadRequest("send exactly one of 'text', 'reply' or 'location'")
    if given[0] == "text":
        text = data["text"]
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("'text' must be a non-empty string")
        if len(text) > TEXT_MAX:
            raise BadRequest(f"'text' is {len(text)} characters; WhatsApp allows at most {TEXT_MAX}")
        return {"type": "text", "text": {"body": text}}
    if given[0] == "reply":
        return _reply(data["reply"])
    return _location(data["location"])


def _reply(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise BadRequest("'reply' must be an object with 'id', 'title' and 'type'")
    kind, reply_id, title = reply.get("type"), reply.get("id"), reply.get("title")
    if kind not in ("button", "list"):
        raise BadRequest("'reply.type' must be 'button' or 'list'")
    if not isinstance(reply_id, str) or not reply_id or len(reply_id) > REPLY_ID_MAX:
        raise BadRequest(f"'reply.id' must be a string of 1 to {REPLY_ID_MAX} characters")
    if not isinstance(title, str) or not title.strip() or len(title) > REPLY_TITLE_MAX:
        raise BadRequest(f"'reply.title' must be a string of 1 to {REPLY_TITLE_MAX} characters")
    field = f"{kind}_reply"
    return {"type": "interactive", "interactive": {"type": field, field: {"id": reply_id, "title": title}}}


def _location(location: Any) -> dict[str, Any]:
    if not isinstance(location, dict):
        raise BadRequest("'location' must be an object with 'latitude' and 'longitude'")
    lat, lon = _coordinate(location.get("latitude"), 90, "latitude"), _coordinate(
        location.get("longitude"), 180, "longitude")
    out: dict[str, Any] = {"latitude": lat, "longitude": lon}
    for key in ("name", "address"):
        value = location.get(key)
        if isinstance(value, str) and value.strip():
            out[key] = value.strip()[:256]
    return {"type": "location", "location": out}


def _coordinate(value: Any, bound: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRequest(f"'location.{name}' must be a number")
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"'location.{name}' must be a number") from None
    if not math.isfinite(number) or abs(number) > bound:
        raise BadRequest(f"'location.{name}' must be between -{bound:g} and {bound:g}")
    return number


def _phone(value: Any) -> str:
    """'+503 7000-0001' (or the same without '+') -> '+50370000001'; BadRequest unless 8-15 digits."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("a WhatsApp number is required ('from' / 'phone'), e.g. +50370000001")
    digits = _NUMBER_PUNCTUATION.sub("", value).removeprefix("+")
    if not _NUMBER.fullmatch(digits):
        raise BadRequest(f"{value.strip()!r} is not an international number: '+' and 8 to 15 digits")
    return "+" + digits


def _name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("'name' must be a string")
    return value.strip()[:NAME_MAX] or None


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _part_parents(cur: Cursor[dict[str, Any]], keys: list[str | None]) -> dict[str, int]:
    """Ids of the rows whose reply was split into the parts among `keys` (idempotency key -> id)."""
    wanted = sorted({m["parent"] for k in keys if k and (m := _PART_KEY.match(k))})
    if not wanted:
        return {}
    rows = cur.execute("SELECT id, idempotency_key FROM messages WHERE idempotency_key = ANY(%s)",
                        (wanted,)).fetchall()
    return {r["idempotency_key"]: int(r["id"]) for r in rows}


def _message_json(row: dict[str, Any], parents: dict[str, int]) -> dict[str, Any]:
    """A row as the page needs it; `order` places the parts of a split reply right after their first part."""
    payload = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"] or "{}")
    order, part = float(row["id"]), 0
    key = row["idempotency_key"]
    if key and (match := _PART_KEY.match(key)):
        part = int(match["part"])
        parent = parents.get(match["parent"])
        if parent is not None:
            order = parent + min(part, 999) / 1000
    return {
        "id": row["id"], "direction": row["direction"], "kind": row["kind"], "body": row["body"],
        "payload": payload, "status": row["status"], "created_at": row["created_at"].isoformat(),
        "provider_message_id": row["provider_message_id"], "conversation_id": row["conversation_id"],
        "conversation_status": row["conversation_status"], "order": order,
        "shown": _shown(payload, part) if row["direction"] == "out" else None,
    }


def _shown(payload: dict[str, Any], part: int) -> dict[str, Any] | None:
    """What the customer's WhatsApp shows for this row: this part of the reply fitted to WhatsApp's limits.

    The stored payload is the reply as composed; the transport sends it fitted
    (`channels.limits.fit`: long text split, 4+ buttons as a list, titles cut),
    one row per part, so the simulator applies the same rules to show the same.
    """
    try:
        message: OutboundMessage = message_from_dict(payload)
        parts = limits.fit(message)
    except (KeyError, TypeError, ValueError):
        return None
    if not parts:
        return None
    return message_to_dict(parts[min(part, len(parts) - 1)])


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _vault() -> Vault:
    state: _State = current_app.extensions["simulator"]
    return state.vault


def _pool() -> ConnectionPool:
    pool: ConnectionPool = current_app.extensions["db_pool"]
    return pool
