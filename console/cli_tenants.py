"""`encargo-admin` commands for the provider's operator: tenants, their channels, key rotation.

    encargo-admin tenant-create --slug acme --name "Acme Envíos" [--timezone America/El_Salvador]
                                [--bot-name Eva] [--greeting "..."] [--core-url https://core.acme.sv]
                                [--core-api-key] [--events-secret]
    encargo-admin tenant-update --slug acme [--name ...] [--timezone ...] [--bot-name ...] [--greeting ...]
                                [--core-url ...] [--core-api-key] [--events-secret]
                                [--llm-provider openai|gemini|none] [--llm-model ...] [--llm-base-url ...]
                                [--llm-api-key | --clear-llm-api-key] [--llm-monthly-usd 25]
                                (the LLM options: "" puts one back to the deployment's / the plan's)
    encargo-admin tenant-suspend --slug acme      (its messages are acknowledged and stored unroutable)
    encargo-admin tenant-resume --slug acme
    encargo-admin tenant-list                     (tenants, status, channels; never a secret)
    encargo-admin channel-add --slug acme --provider meta --number 1234567890 [--waba-id ...] [--secret]
    encargo-admin channel-add --slug acme --provider twilio --number +15551234567 [--account-sid AC...]
                              [--messaging-service-sid MG...] [--secret]
    encargo-admin channel-remove --slug acme --provider meta --number 1234567890
    encargo-admin rotate-secrets                  (re-encrypt everything with the first PHONE_ENCRYPTION_KEY)
    encargo-admin messaging-limit --slug acme --tier 2000|250|10000|100000|unlimited [--waba-id ...]
                                  (WhatsApp's messaging limit of its business account; Meta's webhook updates it)

Secrets never come from the command line (it ends up in shell history and `ps`): a flag only says
which secret to set, and its value is read from an environment variable (ENCARGO_CORE_API_KEY,
ENCARGO_EVENTS_SECRET, ENCARGO_CHANNEL_SECRET, ENCARGO_LLM_API_KEY) or asked on the terminal. Changes
take effect in the running processes within about a second (storage.tenant_changes); no restart.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from typing import Any

import redis
from psycopg_pool import ConnectionPool

from config import Settings, settings_or_exit
from storage import faq_versions, messaging_limits, secret_rotation, tenant_admin, tenant_llm
from storage.crypto import DecryptionError, Vault
from storage.db import open_pool
from storage.tenants import ACTIVE, SUSPENDED, TenantError

SECRETS = {  # flag destination -> (environment variable, prompt)
    "core_api_key": ("ENCARGO_CORE_API_KEY", "Core API key: "),
    "events_secret": ("ENCARGO_EVENTS_SECRET", "Secret the core signs its events with (32+ characters): "),
    "secret": ("ENCARGO_CHANNEL_SECRET", "Channel secret (Meta access token or Twilio auth token): "),
    "llm_api_key": ("ENCARGO_LLM_API_KEY", "The company's model API key: "),
}
MIN_EVENTS_SECRET = 32


def _say(text: str) -> None:
    print(text)  # noqa: T201 - a command-line tool talks to its operator


def register(commands: Any) -> None:
    """Add this module's subcommands to encargo-admin's subparsers; each sets `run(args) -> exit status`."""
    create = commands.add_parser("tenant-create", help="add a company (active at once)")
    create.add_argument("--slug", required=True, help="short id: lowercase letters, digits, hyphens")
    create.add_argument("--name", required=True)
    create.add_argument("--timezone", default="America/El_Salvador")
    _tenant_options(create)
    create.set_defaults(run=_runner(tenant_create))

    update = commands.add_parser("tenant-update", help="change a company's data (only the options given)")
    update.add_argument("--slug", required=True)
    update.add_argument("--name")
    update.add_argument("--timezone")
    _tenant_options(update)
    _llm_options(update)
    update.set_defaults(run=_runner(tenant_update))

    for name, status, text in (("tenant-suspend", SUSPENDED, "stop serving a company (its events are kept "
                                                            "as unroutable)"),
                               ("tenant-resume", ACTIVE, "serve a suspended company again")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--slug", required=True)
        command.set_defaults(run=_runner(tenant_status), status=status)

    commands.add_parser("tenant-list", help="companies, status and channels (no secrets)").set_defaults(
        run=_runner(tenant_list))

    add = commands.add_parser("channel-add", help="give a company a WhatsApp number it receives on")
    add.add_argument("--slug", required=True)
    add.add_argument("--provider", required=True, choices=tenant_admin.PROVIDERS)
    add.add_argument("--number", required=True, help="Meta phone number id, or the Twilio sender (+1555...)")
    add.add_argument("--waba-id")
    add.add_argument("--account-sid")
    add.add_argument("--messaging-service-sid")
    add.add_argument("--secret", action="store_true",
                     help="set the access/auth token: from ENCARGO_CHANNEL_SECRET, or asked")
    add.set_defaults(run=_runner(channel_add))

    remove = commands.add_parser("channel-remove", help="take a number from a company")
    remove.add_argument("--slug", required=True)
    remove.add_argument("--provider", required=True, choices=tenant_admin.PROVIDERS)
    remove.add_argument("--number", required=True)
    remove.set_defaults(run=_runner(channel_remove))

    commands.add_parser("rotate-secrets", help="re-encrypt every stored secret and phone with the first "
                                               "PHONE_ENCRYPTION_KEY").set_defaults(run=_runner(rotate_secrets))

    limit = commands.add_parser("messaging-limit", help="record WhatsApp's messaging limit of a company's "
                                                        "business account (issue 17)")
    limit.add_argument("--slug", required=True)
    limit.add_argument("--tier", required=True, help="250, 2000, 10000, 100000 or unlimited (Meta's tiers)")
    limit.add_argument("--waba-id", default="", help="the WhatsApp Business Account (none: all the company's "
                                                     "numbers without their own)")
    limit.set_defaults(run=_runner(messaging_limit))


Handler = Callable[[argparse.Namespace, Settings, ConnectionPool], int]


def _runner(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """The command as encargo-admin runs it: settings and a small pool around the handler."""

    def run(args: argparse.Namespace) -> int:
        settings = settings_or_exit("encargo-admin")
        pool = open_pool(settings.database_url, max_size=2, name="admin")
        try:
            pool.wait(timeout=10)
            return handler(args, settings, pool)
        finally:
            pool.close()

    return run


def _tenant_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bot-name", help="the assistant's name customers see (empty: the default)")
    parser.add_argument("--greeting", help="the bot's greeting (empty: the default)")
    parser.add_argument("--core-url", help="base URL of the company's logistics core")
    parser.add_argument("--core-api-key", action="store_true",
                        help="set the core's API key: from ENCARGO_CORE_API_KEY, or asked")
    parser.add_argument("--events-secret", action="store_true",
                        help="set the secret its core signs events with: from ENCARGO_EVENTS_SECRET, or asked")


def _llm_options(parser: argparse.ArgumentParser) -> None:
    """The company's own language model (storage/tenant_llm.py); "" puts a value back to the deployment's."""
    parser.add_argument("--llm-provider", help=f"one of {', '.join(tenant_llm.PROVIDERS)} (none: never a model; "
                                               "empty: the deployment's LLM_PROVIDER)")
    parser.add_argument("--llm-model", help="model name (empty: the deployment's LLM_MODEL)")
    parser.add_argument("--llm-base-url", help="its own OpenAI-compatible server or Gemini endpoint (empty: none)")
    parser.add_argument("--llm-api-key", action="store_true",
                        help="set its own model API key: from ENCARGO_LLM_API_KEY, or asked")
    parser.add_argument("--clear-llm-api-key", action="store_true", help="remove its own model API key")
    parser.add_argument("--llm-monthly-usd", help="what its model calls may cost a month, in dollars "
                                                  "(empty: the plan's limit)")


def _llm_changes(args: argparse.Namespace) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for option, name in (("llm_provider", "provider"), ("llm_model", "model"), ("llm_base_url", "base_url"),
                         ("llm_monthly_usd", "monthly_usd")):
        value = getattr(args, option, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "llm_api_key", False) and getattr(args, "clear_llm_api_key", False):
        raise TenantError("give either --llm-api-key or --clear-llm-api-key")
    if getattr(args, "llm_api_key", False):
        changes["api_key"] = _secret("llm_api_key")
    elif getattr(args, "clear_llm_api_key", False):
        changes["api_key"] = None
    return changes


def _secret(name: str) -> str:
    variable, prompt = SECRETS[name]
    given = os.environ.get(variable, "")
    if not given:
        if not sys.stdin.isatty():
            raise TenantError(f"set {variable} or run this on a terminal to type the secret")
        given = getpass.getpass(prompt)
    if not given.strip():
        raise TenantError("the secret is empty")
    if name == "events_secret" and len(given) < MIN_EVENTS_SECRET:
        raise TenantError(f"the events secret must have at least {MIN_EVENTS_SECRET} characters")
    return given


def _changes(args: argparse.Namespace) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for option, field in (("name", "name"), ("timezone", "timezone"), ("bot_name", "bot_name"),
                          ("greeting", "greeting"), ("core_url", "core_api_url")):
        value = getattr(args, option, None)
        if value is not None:
            changes[field] = value
    for name in ("core_api_key", "events_secret"):
        if getattr(args, name, False):
            changes[name] = _secret(name)
    return changes


class _Tools:
    """What the handlers need besides the pool: the vault, and Redis to announce changes."""

    def __init__(self, settings: Settings) -> None:
        self.vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)

    def __enter__(self) -> _Tools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.redis.close()


def _refused(exc: Exception) -> int:
    _say(f"encargo-admin: {exc}")
    return 1


def tenant_create(args: argparse.Namespace, settings: Settings, pool: ConnectionPool) -> int:
    with _Tools(settings) as tools:
        try:
            changes = _changes(args)
            changes.pop("name", None)
            changes.pop("timezone", None)
            tenant = tenant_admin.create_tenant(pool, tools.vault, tools.redis, slug=args.slug, name=args.name,
                                                timezone=args.timezone, **changes)
        except TenantError as exc:
            return _refused(exc)
    _say(f"tenant {tenant.slug} created (id {tenant.id}, active); add its number with channel-add")
    with pool.connection() as conn:
        seeded = faq_versions.current(conn, tenant.id) is not None
    _say(f"its FAQ and policies start from faq_data/{tenant.slug}.yaml" if seeded else
         "its FAQ and policies start empty: its admin writes them in the console (Preguntas frecuentes)")
    return 0


def tenant_update(args: argparse.Namespace, settings: Settings, pool: ConnectionPool) -> int:
    with _Tools(settings) as tools:
        try:
            changes = _changes(args)
            llm = _llm_changes(args)
            if not changes and not llm:
                raise TenantError("nothing to change: give at least one option")
            if changes:
                tenant_admin.update_tenant(pool, tools.vault, tools.redis, args.slug, changes)
            if llm:
                tenant_llm.update(pool, tools.vault, tools.redis, args.slug, llm)
        except TenantError as exc:
            return _refused(exc)
    _say(f"tenant {args.slug} updated: {', '.join(sorted([*changes, *(f'llm_{name}' for name in llm)]))}")
    return 0


def tenant_status(args: argparse.Namespace, settings: Settings, pool: ConnectionPool) -> int:
    with _Tools(settings) as tools:
        try:
            tenant_admin.set_status(pool, tools.redis, args.slug, args.status)
        except TenantError as exc:
            return _refused(exc)
    _say(f"tenant {args.slug} is {args.status}")
    return 0


def tenant_list(args: argparse.Namespace, settings: Settings, pool: ConnectionPool) -> int:
    listing = tenant_admin.list_tenants(pool)
    if not listing:
        _say("no tenants")
    for entry in listing:
        tenant = entry.tenant
        _say(f"{tenant.slug}  {tenant.status}  {tenant.name!r}  {tenant.timezone}"
             f"  core: {entry.core_api_url or '-'} (key {'set' if entry.has_core_api_key else 'not set'})"
             f"  events secret: {'set' if entry.has_events_secret else 'not set'}")
        for channel in entry.channels:
            extras = [f"{label} {value}" for label, value in (("waba", channel.waba_id),
                                                              ("account", channel.account_sid),
                                                              ("service", channel.messaging_service_sid)) if value]
            extras.append(f"secret {'set' if channel.has_secret else 'not set'}")
            extras.append(f"verified {channel.verified_at:%Y-%m-%d}" if channel.verified_at else "not verified")
            _say(f"    {channel.provider} {channel.number}  " + ", ".join(extras))
        if not entry.channels:
            _say("    (no channels)")
    return 0


def channel_add(args: argparse.Namespace, settings: Settings, pool: ConnectionPool) -> int:
    with _Tools(settings) as tools:
        try:
            channel = tenant_admin.add_channel(
                pool, tools.vault, tools.redis, args.slug, provider=args.provider, number=args.number,
                secret=_secret("secret") if args.secret else None, waba_id=args.waba_id,
                account_sid=args.account_sid, messaging_service_sid=args.messaging_service_sid)
        except TenantError as exc:
            return _refused(exc)
    _say(f"{args.slug} now receives on {channel.provider} {channel.number}")
    return 0


def channel_remove(args: argparse.Namespace, settings: Settings, pool: ConnectionPool) -> int:
    with _Tools(settings) as tools:
        try:
            tenant_admin.remove_channel(pool, tools.redis, args.slug, provider=args.provider, number=args.number)
        except TenantError as exc:
            return _refused(exc)
    _say(f"{args.provider} {args.number} removed from {args.slug}; its messages are now unroutable")
    return 0


def rotate_secrets(args: argparse.Namespace, settings: Settings, pool: ConnectionPool) -> int:
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    try:
        counts = secret_rotation.rotate_all(pool, vault)
    except DecryptionError:
        return _refused(ValueError("a stored value cannot be decrypted with any PHONE_ENCRYPTION_KEY key "
                                   "(was a key removed too early?); nothing after it was rewritten"))
    for column, count in counts.items():
        _say(f"{column}: {count} re-encrypted")
    _say("done: every stored value is now encrypted with the first key; older keys can be removed")
    return 0


def messaging_limit(args: argparse.Namespace, settings: Settings, pool: ConnectionPool) -> int:
    try:
        tier = messaging_limits.parse_tier(args.tier)
    except ValueError as exc:
        return _refused(exc)
    with pool.connection() as conn:
        row = conn.execute("SELECT id FROM tenants WHERE slug = %s", (args.slug,)).fetchone()
        if row is None:
            return _refused(TenantError(f"no tenant {args.slug!r}"))
        messaging_limits.set_tier(conn, tenant_id=int(row["id"]), account_id=args.waba_id, tier=tier,  # type: ignore[call-overload]
                                  source="config")
    _say(f"{args.slug}{' ' + args.waba_id if args.waba_id else ''}: messaging limit "
         f"{'unlimited' if tier is None else tier}")
    return 0
