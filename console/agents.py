"""Support agents: who may use the console, for which company, with which role; and password resets.

Passwords are stored only as werkzeug scrypt hashes. A reset is a random
one-time token whose SHA-256 alone is stored; it expires and works once.
Callers pass a connection (autocommit) or hold the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from werkzeug.security import check_password_hash, generate_password_hash

ROLES = ("agent", "supervisor", "admin")
MIN_PASSWORD_LEN = 10
# A hash compared when the e-mail is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


class AgentError(ValueError):
    """Invalid agent data (the message says what is wrong)."""


@dataclass(frozen=True)
class Agent:
    id: int
    tenant_id: int
    name: str
    email: str
    role: str
    active: bool
    # Changes with the password: a session remembers it, so changing the password ends the other sessions.
    stamp: str = ""

    @property
    def first_name(self) -> str:
        return self.name.strip().split(" ")[0] if self.name.strip() else self.name

    @property
    def can_manage(self) -> bool:
        """Supervisors and admins manage canned answers; admins also manage agents."""
        return self.role in ("supervisor", "admin")


_COLUMNS = "id, tenant_id, name, email, role, active, left(md5(password_hash), 16) AS stamp"


def create_agent(conn: Connection[Any], *, tenant_id: int, name: str, email: str, role: str,
                 password: str) -> Agent:
    """Add an agent; raises AgentError for a bad role, a short password or an e-mail already in use."""
    name, email = name.strip(), email.strip().lower()
    if role not in ROLES:
        raise AgentError(f"role must be one of {', '.join(ROLES)}")
    if not name:
        raise AgentError("the agent needs a name")
    if "@" not in email or len(email) > 200:
        raise AgentError("the e-mail address is not valid")
    if len(password) < MIN_PASSWORD_LEN:
        raise AgentError(f"the password must have at least {MIN_PASSWORD_LEN} characters")
    row = conn.execute(
        f"""
        INSERT INTO agents (tenant_id, name, email, role, password_hash) VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (lower(email)) DO NOTHING
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - fixed column list
        (tenant_id, name, email, role, generate_password_hash(password, method="scrypt")),
    ).fetchone()
    if row is None:
        raise AgentError(f"an agent with e-mail {email} exists already")
    return Agent(**row)


def get(conn: Connection[Any], agent_id: int) -> Agent | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM agents WHERE id = %s", (agent_id,)).fetchone()  # noqa: S608
    return None if row is None else Agent(**row)


def by_email(conn: Connection[Any], email: str) -> Agent | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE lower(email) = lower(%s)", (email.strip(),)  # noqa: S608
    ).fetchone()
    return None if row is None else Agent(**row)


def authenticate(conn: Connection[Any], email: str, password: str) -> Agent | None:
    """The active agent with this e-mail and password, or None (same work whether or not the e-mail exists)."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, password_hash FROM agents WHERE lower(email) = lower(%s)",  # noqa: S608
        (email.strip(),),
    ).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(row["password_hash"], password) or not row["active"]:
        return None
    conn.execute("UPDATE agents SET last_login_at = now() WHERE id = %s", (row["id"],))
    return Agent(**{k: row[k] for k in ("id", "tenant_id", "name", "email", "role", "active", "stamp")})


def set_password(conn: Connection[Any], agent_id: int, password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise AgentError(f"the password must have at least {MIN_PASSWORD_LEN} characters")
    conn.execute("UPDATE agents SET password_hash = %s WHERE id = %s",
                 (generate_password_hash(password, method="scrypt"), agent_id))


def for_tenant(conn: Connection[Any], tenant_id: int) -> list[Agent]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE tenant_id = %s ORDER BY name", (tenant_id,)  # noqa: S608
    ).fetchall()
    return [Agent(**r) for r in rows]


def set_active(conn: Connection[Any], tenant_id: int, agent_id: int, active: bool) -> bool:
    """Deactivate (their sessions end at once) or reactivate an agent of this tenant; False if not found."""
    row = conn.execute("UPDATE agents SET active = %s WHERE id = %s AND tenant_id = %s RETURNING id",
                       (active, agent_id, tenant_id)).fetchone()
    return row is not None


# -- password resets ---------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_reset(conn: Connection[Any], agent_id: int, ttl_s: int) -> str:
    """A new one-time reset token for the agent (returned once; only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO password_resets (agent_id, token_hash, expires_at)"
        " VALUES (%s, %s, now() + make_interval(secs => %s))",
        (agent_id, _token_hash(token), ttl_s),
    )
    return token


def reset_is_valid(conn: Connection[Any], token: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM password_resets WHERE token_hash = %s AND used_at IS NULL AND expires_at > now()",
        (_token_hash(token),),
    ).fetchone()
    return row is not None


def use_reset(conn: Connection[Any], token: str, new_password: str) -> Agent | None:
    """Set the new password if the token is unused and not expired; the token then stops working.

    None when the token is unknown, used or expired. Raises AgentError for a short password
    (the token stays usable then).
    """
    if len(new_password) < MIN_PASSWORD_LEN:
        raise AgentError(f"the password must have at least {MIN_PASSWORD_LEN} characters")
    with conn.transaction():
        row = conn.execute(
            "UPDATE password_resets SET used_at = now()"
            " WHERE token_hash = %s AND used_at IS NULL AND expires_at > now() RETURNING agent_id",
            (_token_hash(token),),
        ).fetchone()
        if row is None:
            return None
        set_password(conn, row["agent_id"], new_password)
        return get(conn, row["agent_id"])


def last_login(conn: Connection[Any], agent_id: int) -> datetime | None:
    row = conn.execute("SELECT last_login_at FROM agents WHERE id = %s", (agent_id,)).fetchone()
    return None if row is None else row["last_login_at"]
