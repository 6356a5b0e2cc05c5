"""The console's login rate limit (Redis): failures per (account, client address), under a slower ceiling
per account.

- Per pair: CONSOLE_LOGIN_ATTEMPTS failures of one account from one client address in PAIR_WINDOW_S
  block that pair only. An attacker's address locks itself out, never the agent at her own address.
- Per account: ACCOUNT_FACTOR times as many failures from all addresses together in ACCOUNT_WINDOW_S
  block the account everywhere, so many addresses (a botnet) cannot keep guessing. The agent can
  still reset her password; a completed reset clears both counters (`clear_account`).

There is deliberately no limit per address alone: behind a misconfigured proxy every request has the
same address, and such a limit would let one person lock everybody out.

Accounts and addresses appear in the keys only as keyed hashes (HMAC-SHA256 with PHONE_HASH_KEY, the
key of every lookup hash): Redis holds neither e-mails nor IP addresses. When Redis is unreachable the
limit is skipped (logged): the password hash's cost still slows guessing, and logins keep working.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import redis

from config import Settings

log = logging.getLogger(__name__)

# hash: hashed client address -> failures of this account from it; the window starts at the first failure
PAIRS_KEY = "console:login-fail:pairs:{account}"
# failures of this account from every address
ACCOUNT_KEY = "console:login-fail:account:{account}"
PAIR_WINDOW_S = 15 * 60
ACCOUNT_WINDOW_S = 60 * 60
ACCOUNT_FACTOR = 4


def _digest(settings: Settings, kind: str, value: str) -> str:
    message = f"console-login:{kind}:{value}".encode()
    return hmac.new(settings.phone_hash_key.encode(), message, hashlib.sha256).hexdigest()[:32]


def _names(settings: Settings, email: str, address: str) -> tuple[str, str, str]:
    account = _digest(settings, "account", email.strip().lower())
    return (PAIRS_KEY.format(account=account), ACCOUNT_KEY.format(account=account),
            _digest(settings, "address", address))


def blocked_for(conn: redis.Redis, settings: Settings, email: str, address: str) -> int:
    """Seconds until this account may try again from this address; 0 when it may try now."""
    pairs_key, account_key, field = _names(settings, email, address)
    try:
        pipe = conn.pipeline(transaction=False)
        pipe.hget(pairs_key, field)
        pipe.ttl(pairs_key)
        pipe.get(account_key)
        pipe.ttl(account_key)
        by_pair, pair_ttl, by_account, account_ttl = pipe.execute()
    except redis.RedisError as exc:
        log.warning("login limit unavailable: %s", type(exc).__name__)
        return 0
    limit = settings.console_login_attempts
    wait = 0
    if int(by_pair or 0) >= limit:
        wait = max(int(pair_ttl), 1)
    if int(by_account or 0) >= limit * ACCOUNT_FACTOR:
        wait = max(wait, int(account_ttl), 1)
    return wait


def record_failure(conn: redis.Redis, settings: Settings, email: str, address: str) -> None:
    """Count one failed login of this account from this address (errors are logged, never raised)."""
    pairs_key, account_key, field = _names(settings, email, address)
    try:
        pipe = conn.pipeline(transaction=False)
        pipe.hincrby(pairs_key, field, 1)
        pipe.expire(pairs_key, PAIR_WINDOW_S, nx=True)
        pipe.incr(account_key)
        pipe.expire(account_key, ACCOUNT_WINDOW_S, nx=True)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("login failure not counted: %s", type(exc).__name__)


def clear_address(conn: redis.Redis, settings: Settings, email: str, address: str) -> None:
    """A successful login: this address's failures for the account are forgotten (the ceiling's are not)."""
    pairs_key, _, field = _names(settings, email, address)
    try:
        conn.hdel(pairs_key, field)
    except redis.RedisError as exc:
        log.warning("login failures not cleared: %s", type(exc).__name__)


def clear_account(conn: redis.Redis, settings: Settings, email: str) -> None:
    """A completed password reset: the account starts afresh from every address (errors logged, not raised)."""
    pairs_key, account_key, _ = _names(settings, email, "")
    try:
        conn.delete(pairs_key, account_key)
    except redis.RedisError as exc:
        log.warning("login failures not cleared: %s", type(exc).__name__)
