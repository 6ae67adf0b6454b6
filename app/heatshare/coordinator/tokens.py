"""Bearer tokens, API keys and pairing codes: made here, stored only as sha256 digests."""

from __future__ import annotations

import hashlib
import secrets

ADMIN_PREFIX = "hsa_"
NODE_PREFIX = "hsn_"
REQUESTER_PREFIX = "hsr_"

# No 0/O, 1/I/L: a householder types the code from a screen or a letter.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_GROUPS = 3
_CODE_GROUP_LEN = 4


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token(prefix: str) -> tuple[str, str]:
    """A fresh token and the digest to store."""
    token = prefix + secrets.token_urlsafe(32)
    return token, digest(token)


def new_pairing_code() -> tuple[str, str]:
    """A fresh code like ``7KQM-3XPA-9RTD`` (about 59 bits) and the digest to store."""
    groups = (
        "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_GROUP_LEN))
        for _ in range(_CODE_GROUPS)
    )
    code = "-".join(groups)
    return code, pairing_digest(code)


def pairing_digest(code: str) -> str:
    """Digest of a code as typed: case and dashes do not matter."""
    return digest(code.replace("-", "").upper())
