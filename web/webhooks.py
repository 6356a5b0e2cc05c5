"""The WhatsApp webhooks (Meta Cloud API and Twilio): verify, parse, de-duplicate, enqueue, answer.

No dialog logic runs inside a request. Answers:
- Meta: empty 200; Twilio: 200 with an empty TwiML <Response/>.
- Missing signature 401, wrong signature 403 (nothing stored, a warning logged without the body).
  A Twilio webhook is checked with the auth token of the account owning our number in it
  (web/twilio_signers.py: the channel's own, else the deployment's).
- Malformed JSON or form 400 with the reason (invalid UTF-8, nesting past 32
  levels, numbers past Python's limits included); body over MAX_BODY_BYTES 413
  (web.body_limit, chunked bodies too).
- One message that cannot be stored or read (a lone surrogate, an id of the
  wrong type) is quarantined with its reason and costs only itself: 200 once
  everything else is stored (web.ingest).
- Unknown types, unknown numbers and other business-level surprises still 200:
  anything else makes Meta re-deliver for a week.
- 503 only when an event could be stored neither in PostgreSQL nor in Redis.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, jsonify, request

from channels import meta_webhook, twilio_webhook
from channels.events import MalformedPayload
from config import Settings
from web.ingest import Ingestor, IngestResult
from web.twilio_signers import TwilioSigners

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _ingestor() -> Ingestor:
    ingestor: Ingestor = current_app.extensions["ingestor"]
    return ingestor


@bp.get("/webhooks/whatsapp")
def meta_verify() -> Response | tuple[str, int]:
    """Meta's one-time subscription check: echo hub.challenge when the verify token matches."""
    token = _settings().meta_verify_token
    mode = request.args.get("hub.mode", "")
    given = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge", "")
    if not token:
        log.warning("META_VERIFY_TOKEN is not set: refusing webhook verification")
        return "verification is not configured", 403
    if mode == "subscribe" and hmac.compare_digest(given.encode(), token.encode()):
        return Response(challenge, status=200, mimetype="text/plain")
    log.warning("webhook verification refused", extra={"mode": mode})
    return "verification failed", 403


@bp.post("/webhooks/whatsapp")
def meta_receive() -> Response | tuple[Response, int]:
    settings = _settings()
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    signature = request.headers.get("X-Hub-Signature-256")
    if not settings.meta_app_secret:
        log.error("META_APP_SECRET is not set: every Meta webhook is refused")
        return _error("webhook signing secret is not configured", 403)
    if not signature:
        log.warning("meta webhook without signature refused", extra={"bytes": len(raw)})
        return _error("missing X-Hub-Signature-256", 401)
    if not meta_webhook.signature_is_valid(settings.meta_app_secret, raw, signature):
        log.warning("meta webhook with invalid signature refused", extra={"bytes": len(raw)})
        return _error("invalid X-Hub-Signature-256", 403)
    try:
        delivery = meta_webhook.parse_body(raw)
    except MalformedPayload as exc:
        log.warning("malformed meta webhook", extra={"reason": str(exc)[:200]})
        return _error(str(exc), 400)
    return _answer(_ingestor().accept(delivery.events, delivery.rejected), Response(status=200))


@bp.post("/webhooks/twilio")
@bp.post("/webhooks/twilio/status")
def twilio_receive() -> Response | tuple[Response, int]:
    settings = _settings()
    if request.mimetype != "application/x-www-form-urlencoded":
        return _error("expected an application/x-www-form-urlencoded form", 400)
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        log.warning("twilio webhook without signature refused")
        return _error("missing X-Twilio-Signature", 401)
    # Signed with the auth token of the (sub)account owning our number in it (web/twilio_signers.py).
    signers: TwilioSigners = current_app.extensions["twilio_signers"]
    tokens = signers.tokens_for(request.form)
    unreadable = tokens is None
    if tokens is None:  # the channels cannot be read now: only the deployment's token can tell
        tokens = [signers.deployment_token] if signers.deployment_token else []
    if not tokens and not unreadable:
        log.warning("twilio webhook for a number without an auth token refused (TWILIO_AUTH_TOKEN unset)")
        return _error("invalid X-Twilio-Signature", 403)
    url = _public_url(settings)
    if not any(twilio_webhook.signature_is_valid(token, url, request.form, signature) for token in tokens):
        if unreadable:  # perhaps signed with a company's own token, which cannot be read now: Twilio retries
            return _error("temporarily unable to verify the signature; please retry", 503)
        log.warning("twilio webhook with invalid signature refused")
        return _error("invalid X-Twilio-Signature", 403)
    try:
        delivery = twilio_webhook.parse_form(request.form.to_dict(flat=True), reference=request.args.get("ref"))
    except MalformedPayload as exc:
        return _error(str(exc), 400)
    return _answer(_ingestor().accept(delivery.events, delivery.rejected),
                   Response(twilio_webhook.EMPTY_TWIML, status=200, mimetype="text/xml"))


def _public_url(settings: Settings) -> str:
    """The URL Twilio called (what it signed). Behind a proxy that is PUBLIC_BASE_URL + path, not request.url."""
    if settings.public_base_url:
        query = request.query_string.decode()
        return settings.public_base_url + request.path + (f"?{query}" if query else "")
    return request.url


def _answer(result: IngestResult, ok: Response) -> Response | tuple[Response, int]:
    if result.lost:
        return _error("temporarily unable to store the event; please retry", 503)
    return ok


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error=message), status
