"""Encryption at rest for phone numbers and raw provider payloads, and keyed lookup hashes.

`Vault.encrypt`/`decrypt` use Fernet (AES-128-CBC + HMAC-SHA256) through
MultiFernet, so keys can be rotated: the first key encrypts, every key
decrypts. `Vault.lookup_hash` is an HMAC-SHA256 of a normalised value with a
separate key: equal phones give equal hashes, so a contact is found by phone
without decrypting any row, and the hash is useless without the key.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured key."""


class Vault:
    def __init__(self, encryption_keys: tuple[str, ...], hash_key: str) -> None:
        if not encryption_keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in encryption_keys])
        self._hash_key = hash_key.encode()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise DecryptionError("value was encrypted with an unknown key or is corrupt") from None

    def rotate(self, token: str) -> str:
        """The same value encrypted again with the first key (its timestamp kept), for key rotation."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise DecryptionError("value was encrypted with an unknown key or is corrupt") from None

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()
