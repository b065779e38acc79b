"""A MAC over a gitera record (pure): what authenticates a Gitera-Gate trailer.

The gate writes ``mac`` = HMAC-SHA256 over the record's canonical JSON (every field but
``mac``), the experiment tag and the record's kind, keyed with the experiment's gate-record key
(32 random bytes outside git, gitera.adapters.keys). The verdict checks every gate's MAC before
it opens the test set, and `gitera verify` checks them once the verdict released the key.

What it stops and what it does not (docs/threat-model.md): an agent that edits a trailer, a
gate file or the loop state cannot make a matching MAC without the key; an agent that reads
the key store (it runs as the same user) can. The MAC authenticates the record, not the
measurement behind it: the numbers the gate recorded are re-derived by `gitera verify` where
git holds what they came from (gitera.domain.rederive).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from gitera.core.trailers import dumps

MAC_FIELD = "mac"
_LABEL = b"gitera record mac v1\0"


def record_mac(key: bytes, tag: str, kind: str, record: Mapping[str, Any]) -> str:
    """The hex MAC of ``record`` (its ``mac`` field left out) for experiment ``tag``."""
    body = {k: v for k, v in record.items() if k != MAC_FIELD}
    message = _LABEL + tag.encode() + b"\0" + kind.encode() + b"\0" + dumps(body).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def mac_holds(key: bytes, tag: str, kind: str, record: Mapping[str, Any]) -> bool:
    """True when ``record`` carries the MAC ``key`` gives it."""
    given = record.get(MAC_FIELD)
    return isinstance(given, str) and hmac.compare_digest(given, record_mac(key, tag, kind, record))
