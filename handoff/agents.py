"""Support agents: who may use the console, for which company, with which role; and password resets.

An e-mail address is unique within a company, not across companies (migration 0013): the same address may
hold an account at two companies, each with its own password, role and sessions. Nothing a company's admin
does (adding an agent, resetting a password) tells them whether the address exists elsewhere.
Passwords are stored only as werkzeug scrypt hashes. A reset is a random
one-time token whose SHA-256 alone is stored; it expires, works once, and
stops working when a newer link is issued for the same agent. Changing the
password (by a reset or otherwise) and deactivating an agent end all of that
agent's console sessions (handoff/sessions.py). AgentError messages are shown
to agents as they are, so they are Spanish.
Callers pass a connection (autocommit) or hold the transaction.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from werkzeug.security import check_password_hash, generate_password_hash

from handoff import sessions

ROLES = ("agent", "supervisor", "admin")
MIN_PASSWORD_LEN = 10
# What a reset link is worth (reset_status).
RESET_VALID, RESET_REPLACED, RESET_GONE = "valid", "replaced", "gone"


@functools.cache
def _dummy_hash() -> str:
    """A hash compared when the e-mail is unknown, so a wrong address costs as long as a wrong password.

    Made on first use, not at import: scrypt costs ~0.1 s, which every web process would pay at start."""
    return generate_password_hash("not-a-real-password", method="scrypt")


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

    @property
    def first_name(self) -> str:
        return self.name.strip().split(" ")[0] if self.name.strip() else self.name

    @property
    def can_manage(self) -> bool:
        """Supervisors and admins manage canned answers; admins also manage agents."""
        return self.role in ("supervisor", "admin")


_COLUMNS = "id, tenant_id, name, email, role, active"
# The same columns, qualified for a join with agents AS a.
SESSION_COLUMNS = "a.id, a.tenant_id, a.name, a.email, a.role, a.active"
_TOO_SHORT = f"La contraseña debe tener al menos {MIN_PASSWORD_LEN} caracteres."


def create_agent(conn: Connection[Any], *, tenant_id: int, name: str, email: str, role: str,
                 password: str) -> Agent:
    """Add an agent; raises AgentError for a bad role, a short password or an e-mail already in use at this
    company (the same address at another company is no conflict, and the answer never mentions it)."""
    name, email = name.strip(), email.strip().lower()
    if role not in ROLES:
        raise AgentError(f"El rol debe ser uno de estos: {', '.join(ROLES)}.")
    if not name:
        raise AgentError("Falta el nombre del agente.")
    if "@" not in email or len(email) > 200:
        raise AgentError("El correo no es válido.")
    if len(password) < MIN_PASSWORD_LEN:
        raise AgentError(_TOO_SHORT)
    row = conn.execute(
        f"""
        INSERT INTO agents (tenant_id, name, email, role, password_hash) VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (tenant_id, lower(email)) DO NOTHING
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - fixed column list
        (tenant_id, name, email, role, generate_password_hash(password, method="scrypt")),
    ).fetchone()
    if row is None:
        raise AgentError(f"Ya existe un agente con el correo {email}.")
    return Agent(**row)


def get(conn: Connection[Any], agent_id: int) -> Agent | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM agents WHERE id = %s", (agent_id,)).fetchone()  # noqa: S608
    return None if row is None else Agent(**row)


def by_email(conn: Connection[Any], tenant_id: int, email: str) -> Agent | None:
    """This company's agent with this address (any case), or None."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE tenant_id = %s AND lower(email) = lower(%s)",  # noqa: S608
        (tenant_id, email.strip()),
    ).fetchone()
    return None if row is None else Agent(**row)


def every_account(conn: Connection[Any], email: str) -> list[Agent]:
    """Every company's account with this address, oldest first: for the mail that goes to that inbox (each
    account gets its own reset link) and for the operator; never shown to a company's admin."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE lower(email) = lower(%s) ORDER BY id", (email.strip(),)  # noqa: S608
    ).fetchall()
    return [Agent(**r) for r in rows]


@dataclass(frozen=True)
class Company:
    """A company the login form offers when one address and password open accounts at several."""

    slug: str
    name: str


class ChooseCompany(Exception):  # noqa: N818 - a question to the person logging in, not a failure
    """The address and password open an account at more than one company: the login asks which one."""

    def __init__(self, companies: list[Company]) -> None:
        super().__init__("several companies")
        self.companies = companies


def authenticate(conn: Connection[Any], email: str, password: str, company: str | None = None) -> Agent | None:
    """The active agent with this e-mail and password, or None; `company` (a tenant slug) picks one company.

    The rule, since an address may hold an account at several companies (each with its own password): the
    password is checked against every active account with that address, and the one it opens is the agent.
    When it opens accounts at several companies (the person chose the same password at both) and `company`
    does not say which, ChooseCompany lists exactly those companies: the person knows that password at each
    of them, so the list tells them nothing new. Another company's account whose password differs is never
    named, so nobody learns from the login that an address exists elsewhere. An unknown address costs one
    hash check, like a wrong password.
    """
    rows = conn.execute(
        f"SELECT {SESSION_COLUMNS}, a.password_hash, t.slug, t.name AS company FROM agents a"  # noqa: S608
        " JOIN tenants t ON t.id = a.tenant_id WHERE lower(a.email) = lower(%s) AND a.active ORDER BY a.id",
        (email.strip(),),
    ).fetchall()
    if company:
        rows = [r for r in rows if r["slug"] == company]
    if not rows:
        check_password_hash(_dummy_hash(), password)
        return None
    opened = [r for r in rows if check_password_hash(r["password_hash"], password)]
    if not opened:
        return None
    if len(opened) > 1:
        raise ChooseCompany([Company(slug=str(r["slug"]), name=str(r["company"])) for r in opened])
    conn.execute("UPDATE agents SET last_login_at = now() WHERE id = %s", (opened[0]["id"],))
    return from_row(opened[0])


def password_matches(conn: Connection[Any], agent_id: int, password: str) -> bool:
    """Whether `password` is the agent's current one (asked again before changing it)."""
    row = conn.execute("SELECT password_hash FROM agents WHERE id = %s", (agent_id,)).fetchone()
    return row is not None and check_password_hash(row["password_hash"], password)


def from_row(row: dict[str, Any]) -> Agent:
    """An Agent from a row holding (at least) the columns of _COLUMNS."""
    return Agent(**{k: row[k] for k in ("id", "tenant_id", "name", "email", "role", "active")})


def set_password(conn: Connection[Any], agent_id: int, password: str) -> None:
    """Store the new password and end every console session of the agent, in one transaction."""
    if len(password) < MIN_PASSWORD_LEN:
        raise AgentError(_TOO_SHORT)
    with conn.transaction():
        conn.execute("UPDATE agents SET password_hash = %s WHERE id = %s",
                     (generate_password_hash(password, method="scrypt"), agent_id))
        sessions.end_all(conn, agent_id)


def for_tenant(conn: Connection[Any], tenant_id: int) -> list[Agent]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE tenant_id = %s ORDER BY name", (tenant_id,)  # noqa: S608
    ).fetchall()
    return [Agent(**r) for r in rows]


def set_active(conn: Connection[Any], tenant_id: int, agent_id: int, active: bool) -> bool:
    """Deactivate (their sessions end at once, for good) or reactivate an agent of this tenant; False if not found.

    Reactivating revives none of the old sessions: the agent logs in again.
    """
    with conn.transaction():
        row = conn.execute("UPDATE agents SET active = %s WHERE id = %s AND tenant_id = %s RETURNING id",
                           (active, agent_id, tenant_id)).fetchone()
        if row is not None and not active:
            sessions.end_all(conn, agent_id)
    return row is not None


# -- password resets ---------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_reset(conn: Connection[Any], agent_id: int, ttl_s: int) -> str:
    """A new one-time reset token for the agent (returned once; only its hash is stored).

    The agent's earlier links that are still unused stop working: only the newest link counts.
    """
    token = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute("UPDATE password_resets SET revoked_at = now()"
                     " WHERE agent_id = %s AND used_at IS NULL AND revoked_at IS NULL", (agent_id,))
        conn.execute(
            "INSERT INTO password_resets (agent_id, token_hash, expires_at)"
            " VALUES (%s, %s, now() + make_interval(secs => %s))",
            (agent_id, _token_hash(token), ttl_s),
        )
    return token


def reset_status(conn: Connection[Any], token: str) -> str:
    """What a reset link is worth now: RESET_VALID, RESET_REPLACED (a newer link exists) or RESET_GONE
    (unknown, used or expired)."""
    row = conn.execute(
        "SELECT used_at IS NULL AND expires_at > now() AS open, revoked_at IS NOT NULL AS replaced"
        " FROM password_resets WHERE token_hash = %s",
        (_token_hash(token),),
    ).fetchone()
    if row is None:
        return RESET_GONE
    if row["replaced"]:
        return RESET_REPLACED
    return RESET_VALID if row["open"] else RESET_GONE


def reset_is_valid(conn: Connection[Any], token: str) -> bool:
    return reset_status(conn, token) == RESET_VALID


def use_reset(conn: Connection[Any], token: str, new_password: str) -> Agent | None:
    """Set the new password if the token is unused and not expired; the token then stops working.

    None when the token is unknown, used, replaced by a newer one or expired. Raises AgentError for a
    short password (the token stays usable then). Every session of the agent ends (set_password).
    """
    if len(new_password) < MIN_PASSWORD_LEN:
        raise AgentError(_TOO_SHORT)
    with conn.transaction():
        row = conn.execute(
            "UPDATE password_resets SET used_at = now() WHERE token_hash = %s AND used_at IS NULL"
            " AND revoked_at IS NULL AND expires_at > now() RETURNING agent_id",
            (_token_hash(token),),
        ).fetchone()
        if row is None:
            return None
        set_password(conn, row["agent_id"], new_password)
        return get(conn, row["agent_id"])


def last_login(conn: Connection[Any], agent_id: int) -> datetime | None:
    row = conn.execute("SELECT last_login_at FROM agents WHERE id = %s", (agent_id,)).fetchone()
    return None if row is None else row["last_login_at"]
