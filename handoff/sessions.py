"""Console sessions kept on the server (table agent_sessions): what makes a session cookie worth anything.

Logging in stores a new session and hands its random token to the browser (inside the signed cookie);
only the token's SHA-256 is stored. Every console request looks the token up together with its agent,
so the session ends for every copy of the cookie at once when it is revoked: by logging out (that
session), by a password change or reset and by deactivating the agent (all of that agent's sessions).
Callers pass a connection (autocommit) or hold the transaction; database errors are raised.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from psycopg import Connection

# As long as the browser keeps the cookie (Flask's PERMANENT_SESSION_LIFETIME is set from it).
LIFETIME_S = 12 * 3600


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(conn: Connection[Any], agent_id: int) -> str:
    """A new session for the agent; returns its token (the only copy: for the cookie).

    The agent's sessions that ended long ago are deleted on the way, so the table stays small.
    """
    token = secrets.token_urlsafe(32)
    conn.execute(
        "DELETE FROM agent_sessions WHERE agent_id = %s AND (expires_at < now() - interval '1 day'"
        " OR revoked_at < now() - interval '1 day')",
        (agent_id,),
    )
    conn.execute(
        "INSERT INTO agent_sessions (agent_id, token_hash, expires_at)"
        " VALUES (%s, %s, now() + make_interval(secs => %s))",
        (agent_id, _token_hash(token), LIFETIME_S),
    )
    return token


def agent_of(conn: Connection[Any], token: str, columns: str) -> dict[str, Any] | None:
    """The row (`columns` of `agents a`) of the agent whose session this token opens, or None.

    None when the token is unknown, revoked or expired. Whether the agent is still active is the
    caller's check (the row says it).
    """
    row = conn.execute(
        f"SELECT {columns} FROM agent_sessions s JOIN agents a ON a.id = s.agent_id"  # noqa: S608 - fixed columns
        " WHERE s.token_hash = %s AND s.revoked_at IS NULL AND s.expires_at > now()",
        (_token_hash(token),),
    ).fetchone()
    return None if row is None else dict(row)


def end(conn: Connection[Any], token: str) -> None:
    """Revoke this one session (logout): every copy of its cookie stops working."""
    conn.execute("UPDATE agent_sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
                 (_token_hash(token),))


def end_all(conn: Connection[Any], agent_id: int) -> int:
    """Revoke every open session of the agent (password changed, agent deactivated); returns how many."""
    cursor = conn.execute("UPDATE agent_sessions SET revoked_at = now() WHERE agent_id = %s AND revoked_at IS NULL",
                          (agent_id,))
    return cursor.rowcount
