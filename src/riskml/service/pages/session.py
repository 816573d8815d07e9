"""Signed session cookies: what a login leaves in the browser, and who a request's caller is.

The cookie holds the key's *id* and when it was issued (HMAC-signed), never the
key; every request looks the id up in the service's KeyStore again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time

from fastapi import Request

from riskml.service import state
from riskml.service.access import KeyStore, Principal

SESSION_COOKIE = "riskml_cw"
SESSION_TTL_S = 12 * 3600
LOGIN_ROLES = ("caseworker", "admin")

# A per-process secret unless one is configured (sessions then end when the service restarts).
_SECRET = os.environ.get("RISKML_SESSION_SECRET", "").encode("utf-8") or secrets.token_bytes(32)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(payload: str) -> str:
    return b64(hmac.new(_SECRET, payload.encode("utf-8"), hashlib.sha256).digest())


def sign_session(key_id: str, issued: int | None = None) -> str:
    """The cookie value for a session of this key id: ``<id b64>.<issued>.<hmac>`` (no key inside)."""
    payload = f"{b64(key_id.encode('utf-8'))}.{int(time.time() if issued is None else issued)}"
    return f"{payload}.{_mac(payload)}"


def read_session(value: str | None, now: float | None = None) -> str | None:
    """The key id of a valid, unexpired session cookie, or None."""
    if not value or len(value) > 512:
        return None
    parts = value.split(".")
    if len(parts) != 3:
        return None
    id_part, issued, mac = parts
    if not hmac.compare_digest(mac, _mac(f"{id_part}.{issued}")):
        return None
    try:
        age = (time.time() if now is None else now) - int(issued)
        key_id = _unb64(id_part).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if not 0 <= age <= SESSION_TTL_S:
        return None
    return key_id


def _keys() -> KeyStore:
    """The service's key store, re-read by the service when its keys file changed."""
    return state.current().current_keys()


def session_principal(request: Request) -> Principal | None:
    """The caller of this request: its session's key, looked up again in the KeyStore."""
    key_id = read_session(request.cookies.get(SESSION_COOKIE))
    if key_id is None:
        return None
    principal = _keys().principal_by_id(key_id)
    if principal is None or principal.role not in LOGIN_ROLES:
        return None
    return principal
