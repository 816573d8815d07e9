"""Sessions and logins: the signed session cookie, its server-side end, and the login's limits.

The cookie holds the key's *id*, a mark of the key's hash, a random session id and
when it was issued (HMAC-signed), never the key nor its hash. Every request looks
the id up in the keys in force again, and the session holds only while that id's
hash is the one it was opened with: a key re-issued under the same id (new token,
new hash) ends the old key's sessions, and so does a removed key or keys that
fail (no keys in force).

Logout ends the session on the server: its id is written to the ledger's access
log (action ``logout``; the ``household_id`` column holds ``session:<id>``, the one
indexed look-up of that log's API) and kept in this process, so a replayed cookie
is refused by every worker and after a restart (with ``RISKML_SESSION_SECRET``).

``POST /cw/login`` reads at most ``LOGIN_MAX_BYTES`` of a plain URL-encoded form
(no multipart, no files, at most ``LOGIN_MAX_FIELDS`` fields) within
``LOGIN_BODY_TIMEOUT_S``; at most ``LOGINS_IN_FLIGHT`` logins read their form at
once (the rest answer 429), so slow posts cannot fill the service's concurrency
cap; and failed logins are limited per client address and per key id
(``FAILED_LOGINS`` per ``FAILED_WINDOW_S``, then 429 with ``Retry-After``). The
counts are per worker process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.requests import ClientDisconnect

from riskml.service import state
from riskml.service.access import Principal
from riskml.store.ledger import Ledger, LedgerError

SESSION_COOKIE = "riskml_cw"
SESSION_TTL_S = 12 * 3600
LOGIN_ROLES = ("caseworker", "township", "county", "admin")
LOGOUT_ACTION = "logout"
SESSION_MARK = "session:"  # the access log's household_id of an ended session: session:<id>

LOGIN_MAX_BYTES = 4096
LOGIN_MAX_FIELDS = 5
LOGIN_BODY_TIMEOUT_S = 5.0
LOGINS_IN_FLIGHT = 8
FAILED_LOGINS = 5
FAILED_WINDOW_S = 60.0

# A per-process secret unless one is configured (sessions then end when the service restarts).
_SECRET = os.environ.get("RISKML_SESSION_SECRET", "").encode("utf-8") or secrets.token_bytes(32)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(payload: str) -> str:
    return b64(hmac.new(_SECRET, payload.encode("utf-8"), hashlib.sha256).digest())


def key_mark(key_hash: str) -> str:
    """What a session keeps of its key's hash: an HMAC of it (the hash itself never leaves)."""
    return _mac(f"key:{key_hash}")[:22]


# --------------------------------------------------------------------------- the cookie
@dataclass(frozen=True)
class Session:
    """A valid, unexpired session cookie: whose key, bound to which hash, which session, since when."""

    key_id: str
    key_mark: str
    session_id: str
    issued: int


def sign_session(
    key_id: str, key_hash: str, *, issued: int | None = None, session_id: str | None = None
) -> str:
    """The cookie value of a new session: ``<id b64>.<key mark>.<session id>.<issued>.<hmac>``."""
    sid = session_id or secrets.token_urlsafe(16)
    when = int(time.time() if issued is None else issued)
    payload = f"{b64(key_id.encode('utf-8'))}.{key_mark(key_hash)}.{sid}.{when}"
    return f"{payload}.{_mac(payload)}"


def read_session(value: str | None, now: float | None = None) -> Session | None:
    """The session of a validly signed, unexpired cookie, or None (the keys are not consulted)."""
    if not value or len(value) > 512:
        return None
    parts = value.split(".")
    if len(parts) != 5:
        return None
    id_part, mark, sid, issued, mac = parts
    if not hmac.compare_digest(mac, _mac(".".join(parts[:4]))):
        return None
    try:
        age = (time.time() if now is None else now) - int(issued)
        key_id = _unb64(id_part).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if not 0 <= age <= SESSION_TTL_S or not sid:
        return None
    return Session(key_id, mark, sid, int(issued))


# --------------------------------------------------------------------------- ended sessions
class EndedSessions:
    """Session ids ended by logout: in the ledger's access log (all workers) and in this process."""

    def __init__(self) -> None:
        self._ended: dict[str, float] = {}  # session id -> when its cookie would expire anyway
        self._lock = threading.Lock()

    def _remember(self, session: Session) -> None:
        with self._lock:
            if len(self._ended) > 10_000:  # a cache: the ledger holds every ended session
                now = time.time()
                self._ended = {s: t for s, t in self._ended.items() if t > now}
                if len(self._ended) > 10_000:
                    self._ended.clear()
            self._ended[session.session_id] = session.issued + SESSION_TTL_S

    def end(self, ledger: Ledger, session: Session, principal: Principal | None) -> None:
        """End a session for good; raises LedgerError when the ledger could not record it
        (it is then ended in this process only)."""
        self._remember(session)
        ledger.log_access(
            session.key_id,
            principal.role if principal is not None else "unknown",
            LOGOUT_ACTION,
            household_id=SESSION_MARK + session.session_id,
            scope=principal.describe_scope() if principal is not None else None,
        )

    def is_ended(self, ledger: Ledger, session: Session) -> bool:
        """Was this session ended (by any worker)? True also when the ledger cannot say (fail closed)."""
        if session.session_id in self._ended:
            return True
        try:
            rows = ledger.access_log(1, household_id=SESSION_MARK + session.session_id)
        except LedgerError:
            return True
        if rows and rows[0]["action"] == LOGOUT_ACTION:
            self._remember(session)
            return True
        return False


ENDED = EndedSessions()


def session_of(request: Request) -> Session | None:
    """The request's session cookie, when validly signed and unexpired (not yet checked against keys)."""
    return read_session(request.cookies.get(SESSION_COOKIE))


def session_principal(request: Request) -> Principal | None:
    """The caller of this request: its session's key, if still the same key and the session not ended."""
    session = session_of(request)
    if session is None:
        return None
    service = state.current()
    store = service.current_keys()  # None or empty while the keys fail: no session holds
    entry = store.entry_by_id(session.key_id) if store is not None else None
    if entry is None or not hmac.compare_digest(key_mark(entry.hash), session.key_mark):
        return None
    principal = entry.principal()
    if principal.role not in LOGIN_ROLES or ENDED.is_ended(service.ledger, session):
        return None
    return principal


# --------------------------------------------------------------------------- login limits
class FailureLimiter:
    """At most ``limit`` failures per ``window_s`` for each name (a client address, a key id)."""

    def __init__(self, limit: int = FAILED_LOGINS, window_s: float = FAILED_WINDOW_S):
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, name: str, now: float | None = None) -> int:
        """Seconds until ``name`` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.get(name)
            if not times:
                return 0
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[-self.limit] + self.window_s - now))

    def fail(self, name: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if name not in self._failures and len(self._failures) >= 10_000:
                cutoff = now - self.window_s
                self._failures = {n: t for n, t in self._failures.items() if t and t[-1] > cutoff}
                while len(self._failures) >= 10_000:  # still full: forget the oldest names
                    self._failures.pop(next(iter(self._failures)))
            times = self._failures.setdefault(name, deque(maxlen=self.limit))
            times.append(now)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()


FAILED = FailureLimiter()


class InFlight:
    """How many logins are reading their form now; at most ``limit``."""

    def __init__(self, limit: int = LOGINS_IN_FLIGHT):
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.count -= 1


LOGINS = InFlight()


def client_address(request: Request) -> str:
    """The peer's address (behind a proxy every caller has the proxy's: the limits then count them
    together; ``X-Forwarded-For`` is not trusted)."""
    return request.client.host if request.client is not None else "unknown"


class LoginFormError(Exception):
    """A login post refused before its key is looked at: the status and why (no content)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_login_form(request: Request) -> dict[str, str]:
    """The fields of a login post (first value of each), read with the login's limits.

    415 for anything but ``application/x-www-form-urlencoded`` (multipart, files),
    413 past ``LOGIN_MAX_BYTES`` (a declared length is refused unread), 408 when the
    body has not arrived within ``LOGIN_BODY_TIMEOUT_S``, 400 for more than
    ``LOGIN_MAX_FIELDS`` fields or a form that does not decode.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise LoginFormError(415, "not a URL-encoded form")
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > LOGIN_MAX_BYTES:
        raise LoginFormError(413, f"body over {LOGIN_MAX_BYTES} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(LOGIN_BODY_TIMEOUT_S):
            async for chunk in request.stream():
                body += chunk
                if len(body) > LOGIN_MAX_BYTES:
                    raise LoginFormError(413, f"body over {LOGIN_MAX_BYTES} bytes")
    except TimeoutError:
        raise LoginFormError(408, f"body not received within {LOGIN_BODY_TIMEOUT_S:g} s") from None
    except ClientDisconnect:
        raise LoginFormError(400, "client disconnected") from None
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, max_num_fields=LOGIN_MAX_FIELDS,
            encoding="utf-8", errors="strict",
        )  # fmt: skip
    except ValueError:  # too many fields, or not ASCII / UTF-8 once decoded
        raise LoginFormError(400, f"not a form of at most {LOGIN_MAX_FIELDS} fields") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form
