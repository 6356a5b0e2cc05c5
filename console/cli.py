"""`encargo-admin`: create the first admin (and other agents), and the demo agent of `make run`.

    encargo-admin create-agent --email ana@empresa.sv --name "Ana Martínez" [--role admin] [--tenant demo]
        The password is read from ENCARGO_AGENT_PASSWORD, or asked twice on the terminal.
    encargo-admin demo-agent
        For `make run`: the configured tenant gets the agent CONSOLE_DEMO_EMAIL with CONSOLE_DEMO_PASSWORD
        (kept when it exists) and a few canned answers; prints how to log in.
    encargo-admin reset-link --email ana@empresa.sv [--tenant demo]
        Prints a one-time password reset link (PUBLIC_BASE_URL + path), valid CONSOLE_RESET_TTL_S seconds;
        the agent's earlier links stop working. This is how an admin helps when SMTP is not configured.
        An address is unique per company: when it is an agent's at several, --tenant says which.
    encargo-admin mask-phones on|off [--tenant demo]
        Whether agents with the `agent` role see customers' phone numbers masked ("+503 7••• ••02") on the
        case page; supervisors and admins always see them.
    encargo-admin usage --month 2026-12 [--tenant slug] [--csv FILE|-] | plans-list | plan-set --tenant --plan
        Plans and monthly usage per tenant (console/cli_usage.py).
    encargo-admin tenant-create | tenant-update | tenant-suspend | tenant-resume | tenant-list | channel-add |
                  channel-remove | rotate-secrets
        Companies, their WhatsApp numbers and key rotation (console/cli_tenants.py; `--help` on each).
    encargo-admin operator-create --email ops@proveedor.com | operator-password --email ops@proveedor.com
        The provider's operators, who log in at /operator/login (console/cli_operators.py).

Exit status: 0 done, 1 refused (bad data, unknown tenant or agent), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

from psycopg import Connection

from config import settings_or_exit
from console import canned, cli_operators, cli_tenants, cli_usage
from handoff import agents
from handoff.agents import AgentError
from storage.db import open_pool
from storage.tenants import ensure_configured_tenant

DEMO_EMAIL = "soporte@demo.encargo"
DEMO_NAME = "Carlos Demo"


def _say(text: str) -> None:
    print(text)  # noqa: T201 - a command-line tool talks to its operator


def _password(confirm: bool = True) -> str:
    given = os.environ.get("ENCARGO_AGENT_PASSWORD", "")
    if given:
        return given
    if not sys.stdin.isatty():
        raise AgentError("set ENCARGO_AGENT_PASSWORD or run this on a terminal to type the password")
    first = getpass.getpass("Password (10+ characters): ")
    if confirm and getpass.getpass("Repeat it: ") != first:
        raise AgentError("the passwords differ")
    return first


def _slug(conn: Connection[Any], tenant_id: int) -> str:
    row = conn.execute("SELECT slug FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    return str(row["slug"]) if row else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="encargo-admin", description="Agents of the support console")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-agent", help="add an agent (the first one as --role admin)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=agents.ROLES, default="admin")
    create.add_argument("--tenant", help="tenant slug (default: TENANT_SLUG); an e-mail is unique per tenant")
    commands.add_parser("demo-agent", help="the demo agent for make run")
    reset = commands.add_parser("reset-link", help="print a one-time password reset link")
    reset.add_argument("--email", required=True)
    reset.add_argument("--tenant", help="tenant slug, when the e-mail is an agent's at several tenants")
    mask = commands.add_parser("mask-phones", help="hide customers' phones from the agent role, or show them")
    mask.add_argument("state", choices=("on", "off"))
    mask.add_argument("--tenant", help="tenant slug (default: TENANT_SLUG)")
    cli_usage.register(commands)
    cli_tenants.register(commands)
    cli_operators.register(commands)
    args = parser.parse_args(argv)
    if "run" in args:  # a command registered by a cli_* module runs itself
        return int(args.run(args))

    settings = settings_or_exit("encargo-admin")
    pool = open_pool(settings.database_url, max_size=2, name="admin")
    try:
        pool.wait(timeout=10)
        tenant_id = ensure_configured_tenant(pool, settings)
        with pool.connection() as conn:
            if args.command == "create-agent":
                if args.tenant and args.tenant != settings.tenant_slug:
                    row = conn.execute("SELECT id FROM tenants WHERE slug = %s", (args.tenant,)).fetchone()
                    if row is None:
                        _say(f"encargo-admin: no tenant {args.tenant!r}")
                        return 1
                    tenant_id = int(row["id"])  # type: ignore[call-overload]
                agent = agents.create_agent(conn, tenant_id=tenant_id, name=args.name, email=args.email,
                                            role=args.role, password=_password())
                _say(f"agent {agent.email} ({agent.role}) created; log in at /console/login")
            elif args.command == "demo-agent":
                email = os.environ.get("CONSOLE_DEMO_EMAIL", DEMO_EMAIL)
                password = os.environ.get("CONSOLE_DEMO_PASSWORD", "")
                if agents.by_email(conn, tenant_id, email) is None:
                    if not password:
                        _say("encargo-admin: CONSOLE_DEMO_PASSWORD is not set")
                        return 1
                    agents.create_agent(conn, tenant_id=tenant_id, name=DEMO_NAME, email=email, role="admin",
                                        password=password)
                canned.seed_defaults(conn, tenant_id)
                _say(f"console: log in at {settings.public_base_url or ''}/console as {email}"
                     + (f" / {password}" if password else ""))
            elif args.command == "mask-phones":
                slug = args.tenant or settings.tenant_slug
                updated = conn.execute("UPDATE tenants SET mask_phones_for_agents = %s WHERE slug = %s",
                                       (args.state == "on", slug)).rowcount
                if not updated:
                    _say(f"encargo-admin: no tenant {slug!r}")
                    return 1
                _say(f"{slug}: agents see customers' phones " + ("masked" if args.state == "on" else "in full"))
            else:
                accounts = [a for a in agents.every_account(conn, args.email)
                            if not args.tenant or _slug(conn, a.tenant_id) == args.tenant]
                if len(accounts) != 1:
                    slugs = ", ".join(sorted(_slug(conn, a.tenant_id) for a in accounts))
                    _say(f"encargo-admin: the agent {args.email} is at several tenants ({slugs}): pass --tenant"
                         if accounts else f"encargo-admin: no agent {args.email}"
                         + (f" at tenant {args.tenant!r}" if args.tenant else ""))
                    return 1
                found = accounts[0]
                token = agents.create_reset(conn, found.id, settings.console_reset_ttl_s)
                _say(f"{settings.public_base_url}/console/password/reset/{token}")
    except AgentError as exc:
        _say(f"encargo-admin: {exc}")
        return 1
    finally:
        pool.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
