"""Operators: the people of the provider that runs the deployment (tables `operators`, `operator_sessions`).

An operator is nobody's agent: no tenant, its own e-mail (unique, any case),
its own password (a werkzeug scrypt hash, as agents' are) and its own
server-side sessions. A session token is random; only its SHA-256 is stored,
so the database never holds a usable cookie. Logging out revokes that session,
a new password revokes all of the operator's.

Callers pass a connection (autocommit) or hold the transaction. A refused
change raises `OperatorError` (with a message an operator can read); database
errors raise.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, errors
from werkzeug.security import check_password_hash, generate_password_hash

MIN_PASSWORD_LEN = 12
SESSION_LIFETIME_S = 12 * 3600
_COLUMNS = "o.id, o.email, o.active"


class OperatorError(ValueError):
    """A refused change: a taken or bad e-mail, a short password, an unknown operator."""


@dataclass(frozen=True)
class Operator:
    id: int
    email: str
    active: bool = True


def _hash(password: str) -> str:
    if len(password) < MIN_PASSWORD_LEN:
        raise OperatorError(f"La contraseña debe tener al menos {MIN_PASSWORD_LEN} caracteres.")
    return generate_password_hash(password, method="scrypt")


def create(conn: Connection[Any], email: str, password: str) -> Operator:
    """A new active operator. OperatorError for a bad or taken e-mail or a short password."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 200:
        raise OperatorError("El correo no es válido.")
    try:
        row = conn.execute(
            f"INSERT INTO operators AS o (email, password_hash) VALUES (%s, %s) RETURNING {_COLUMNS}",  # noqa: S608
            (email, _hash(password)),
        ).fetchone()
    except errors.UniqueViolation:
        raise OperatorError(f"Ya existe un operador con el correo {email}.") from None
    assert row is not None
    return Operator(**row)


def exists(conn: Connection[Any], email: str) -> bool:
    return conn.execute("SELECT 1 FROM operators WHERE lower(email) = lower(%s)", (email.strip(),)).fetchone() \
        is not None


def set_password(conn: Connection[Any], email: str, password: str) -> Operator:
    """A new password; every session of the operator ends. OperatorError for an unknown e-mail."""
    with conn.transaction():
        row = conn.execute(
            f"UPDATE operators o SET password_hash = %s WHERE lower(o.email) = lower(%s) RETURNING {_COLUMNS}",  # noqa: S608
            (_hash(password), email.strip()),
        ).fetchone()
        if row is None:
            raise OperatorError(f"No hay ningún operador con el correo {email.strip()}.")
        conn.execute("UPDATE operator_sessions SET revoked_at = now() WHERE operator_id = %s AND revoked_at IS NULL",
                     (row["id"],))
    return Operator(**row)


def authenticate(conn: Connection[Any], email: str, password: str) -> Operator | None:
    """The active operator with this e-mail and password, else None. An unknown address costs as long as a
    wrong password (a hash is checked either way)."""
    row = conn.execute(f"SELECT {_COLUMNS}, o.password_hash FROM operators o WHERE lower(o.email) = lower(%s)",  # noqa: S608
                       (email.strip(),)).fetchone()
    if row is None:
        check_password_hash(_dummy_hash(), password)
        return None
    values = dict(row)
    if not check_password_hash(values.pop("password_hash"), password) or not values["active"]:
        return None
    return Operator(**values)


@functools.cache
def _dummy_hash() -> str:
    """Made on first use (scrypt costs ~0.1 s, which every web process would otherwise pay at start)."""
    return generate_password_hash("not-a-real-password", method="scrypt")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: Connection[Any], operator_id: int) -> str:
    """A new session; returns its token (the only copy: for the cookie). Long-ended sessions are deleted."""
    token = secrets.token_urlsafe(32)
    conn.execute("DELETE FROM operator_sessions WHERE operator_id = %s AND (expires_at < now() - interval '1 day'"
                 " OR revoked_at < now() - interval '1 day')", (operator_id,))
    conn.execute("INSERT INTO operator_sessions (operator_id, token_hash, expires_at)"
                 " VALUES (%s, %s, now() + make_interval(secs => %s))",
                 (operator_id, _token_hash(token), SESSION_LIFETIME_S))
    return token


def of_session(conn: Connection[Any], token: str) -> Operator | None:
    """The active operator whose open session this token is, else None (unknown, revoked, expired, inactive)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM operator_sessions s JOIN operators o ON o.id = s.operator_id"  # noqa: S608
        " WHERE s.token_hash = %s AND s.revoked_at IS NULL AND s.expires_at > now() AND o.active",
        (_token_hash(token),),
    ).fetchone()
    return Operator(**row) if row is not None else None


def end_session(conn: Connection[Any], token: str) -> None:
    """Revoke this session (logout): every copy of its cookie stops working."""
    conn.execute("UPDATE operator_sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
                 (_token_hash(token),))
