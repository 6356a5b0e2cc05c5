"""`encargo-admin` commands for the provider's operators (the people who use /operator).

    encargo-admin operator-create --email ops@proveedor.com
        A new operator. The password is read from ENCARGO_OPERATOR_PASSWORD, or asked twice on the terminal
        (12+ characters), as `create-agent` does for agents. Log in at /operator/login.
    encargo-admin operator-password --email ops@proveedor.com
        A new password for an operator (same sources); every session of theirs ends.
    encargo-admin demo-operator
        For `make run`: the operator OPERATOR_DEMO_EMAIL with OPERATOR_DEMO_PASSWORD (kept when it exists).

Exit status: 0 done, 1 refused (taken or unknown e-mail, short password), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from config import settings_or_exit
from storage import operators
from storage.db import open_pool
from storage.operators import OperatorError

DEMO_EMAIL = "ops@demo.encargo"


def register(commands: Any) -> None:
    """Add `operator-create` and `operator-password` to encargo-admin's subcommands."""
    create = commands.add_parser("operator-create", help="add an operator of the provider (the /operator area)")
    create.add_argument("--email", required=True)
    create.set_defaults(run=operator_command)
    password = commands.add_parser("operator-password", help="set a new password for an operator")
    password.add_argument("--email", required=True)
    password.set_defaults(run=operator_command)
    demo = commands.add_parser("demo-operator", help="the demo operator for make run")
    demo.set_defaults(run=operator_command)


def _password() -> str:
    given = os.environ.get("ENCARGO_OPERATOR_PASSWORD", "")
    if given:
        return given
    if not sys.stdin.isatty():
        raise OperatorError("set ENCARGO_OPERATOR_PASSWORD or run this on a terminal to type the password")
    first = getpass.getpass(f"Password ({operators.MIN_PASSWORD_LEN}+ characters): ")
    if getpass.getpass("Repeat it: ") != first:
        raise OperatorError("the passwords differ")
    return first


def operator_command(args: argparse.Namespace) -> int:
    settings = settings_or_exit("encargo-admin")
    pool = open_pool(settings.database_url, max_size=1, name="admin")
    try:
        pool.wait(timeout=10)
        with pool.connection() as conn:
            if args.command == "demo-operator":
                email = os.environ.get("OPERATOR_DEMO_EMAIL", DEMO_EMAIL)
                given = os.environ.get("OPERATOR_DEMO_PASSWORD", "")
                if not operators.exists(conn, email):
                    if not given:
                        raise OperatorError("OPERATOR_DEMO_PASSWORD is not set")
                    operators.create(conn, email, given)
                _say(f"operator area: log in at {settings.public_base_url or ''}/operator as {email}")
            elif args.command == "operator-create":
                found = operators.create(conn, args.email, _password())
                _say(f"operator {found.email} created; log in at {settings.public_base_url or ''}/operator/login")
            else:
                found = operators.set_password(conn, args.email, _password())
                _say(f"operator {found.email}: password changed, every session of theirs ended")
    except OperatorError as exc:
        _say(f"encargo-admin: {exc}")
        return 1
    finally:
        pool.close()
    return 0


def _say(text: str) -> None:
    print(text)  # noqa: T201 - a command-line tool talks to its operator
