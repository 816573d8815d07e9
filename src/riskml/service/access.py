"""API keys with roles and scopes.

Roles:

- ``scorer`` may call ``POST /score``;
- ``caseworker`` may read decisions of the counties and/or villages listed for
  its key;
- ``township`` (scoped by 9-digit townships) and ``county`` (by counties) read the
  households of their area and take their steps of the case loop (``riskml.cases``);
  a caseworker may also be scoped by townships;
- ``department`` (scoped by counties and departments) pushes its departments' alerts
  (``POST /alerts``, ``riskml.alerts``);
- ``reporter`` (scoped by counties): a registered social organisation, enterprise or
  volunteer reports risks it sees (``POST /reports``, 社会参与) and reads nothing else;
- ``region`` (scoped by ``areas``: provinces, prefectures, counties; ``riskml.service.areas``)
  reads the regional pages (``/cw/regions``) of its areas: counts only, never a household;
- ``assets`` (scoped by counties) scores and reads its counties' assistance assets (``/assets``);
- ``admin`` may reload the model, read every decision and also score.

Keys are configured as entries (YAML file and/or the JSON env var
``RISKML_API_KEYS``), each::

    id: village-team-1            # a name for logs and the ledger's caller column
    hash: "sha256:<64 hex>"       # hash_token(token); never the raw key
    role: caseworker
    counties: ["530102"]          # 6-digit county codes (caseworker only)
    villages: ["530102001001"]    # 12-digit village codes (caseworker only)

A file holds either a list of entries or a mapping with a ``keys:`` list.
Tokens are random (``new_token``: 256 bits), so a plain SHA-256 of the token is
a safe stored form; it is compared with ``hmac.compare_digest``.

A running service holds its keys in a ``LiveKeys`` (``riskml.service.live_keys``): the file and the env var are
checked every 2 s and re-read when they change, and the keys *fail closed*: while
the file is missing, unreadable or invalid (or the env var is), no key is
accepted and ``LiveKeys.error`` says why (naming the file, never its content).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from riskml import config
from riskml.data.regions import PROVINCES
from riskml.service.areas import covers, parse_areas

__all__ = [
    "ROLES",
    "TOKEN_PREFIX",
    "KeyConfigError",
    "KeyEntry",
    "KeyStore",
    "Principal",
    "add_key",
    "default_keys_file",
    "hash_token",
    "new_token",
]

ROLES = (
    "scorer", "caseworker", "township", "county", "department", "reporter", "admin", "metrics",
    "region", "assets",
)  # fmt: skip
# the roles that read households in a scope and act in the case loop (riskml.cases)
CASE_ROLES = ("caseworker", "township", "county")
TOKEN_PREFIX = "rk_"
ENV_FILE = "RISKML_API_KEYS_FILE"
ENV_KEYS = "RISKML_API_KEYS"
DEFAULT_KEYS_FILE_NAME = "api_keys.yaml"

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_COUNTY = re.compile(r"^[0-9]{6}$")
_VILLAGE = re.compile(r"^[0-9]{12}$")
_TOWNSHIP = re.compile(r"^[0-9]{9}$")
_KNOWN_KEYS = frozenset(
    {"id", "hash", "role", "counties", "villages", "townships", "departments", "note", "created",
     "areas"}
)  # fmt: skip
_BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)


log = logging.getLogger("riskml.keys")


class KeyConfigError(ValueError):
    """Key entries that cannot be used; the message names each entry and key at fault.

    ``summary`` says what is wrong in a line fit for logs and ``/readyz``: the file's
    name and the kind of fault, never the file's content (no id, hash or value).
    """

    def __init__(self, message: str, summary: str | None = None):
        super().__init__(message)
        self.summary = summary or "invalid API keys"


def _invalid(problems: list[str], sources: dict[str, str]) -> KeyConfigError:
    """The error for entry problems; ``sources`` maps each source as problems name it to a short name."""
    named = [
        name for src, name in sources.items() if any(p.startswith(f"{src}:") for p in problems)
    ]
    where = ", ".join(named or sources.values())
    n = len(problems)
    summary = f"{n} problem{'s' if n != 1 else ''} in the key entries"
    summary = f"{where}: {summary}" if where else summary
    return KeyConfigError("invalid API keys:\n  " + "\n  ".join(problems), summary)


def hash_token(token: str) -> str:
    """The stored form of a token: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random API token (``rk_`` + 43 url-safe characters, 256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def default_keys_file() -> Path:
    """$RISKML_API_KEYS_FILE, else api_keys.yaml in the state folder."""
    env = os.environ.get(ENV_FILE)
    return Path(env).expanduser() if env else config.STATE_DIR / DEFAULT_KEYS_FILE_NAME


# --------------------------------------------------------------------------- principal
@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and scope.

    A caseworker's counties and villages are what it may read; a scorer's
    counties, when it has any, are the only ones it may write (none: any county,
    e.g. a provincial platform). A ``metrics`` key reads ``/metrics`` only.
    """

    id: str
    role: str
    counties: frozenset[str] = field(default_factory=frozenset)
    villages: frozenset[str] = field(default_factory=frozenset)
    townships: frozenset[str] = field(default_factory=frozenset)
    departments: frozenset[str] = field(default_factory=frozenset)
    areas: frozenset[str] = field(default_factory=frozenset)

    def can_score(self) -> bool:
        return self.role in ("scorer", "admin")

    def can_push_alerts(self, department: str, county_code: str) -> bool:
        """May this caller push a department's alert about a household of this county?"""
        if self.role == "admin":
            return True
        return (
            self.role == "department"
            and department in self.departments
            and county_code in self.counties
        )

    def can_report(self, county_code: str) -> bool:
        """May this caller report a risk seen in this county (社会参与)?"""
        if self.role == "admin":
            return True
        return self.role == "reporter" and county_code in self.counties

    def can_read_assets(self, county_code: str) -> bool:
        """May this caller score and read the assistance assets of this county?"""
        return self.role == "admin" or (self.role == "assets" and county_code in self.counties)

    def can_admin(self) -> bool:
        return self.role == "admin"

    def can_read_metrics(self) -> bool:
        return self.role in ("admin", "metrics")

    def can_write(self, county_code: str) -> bool:
        """May this caller score a record of this county?"""
        if self.role == "admin":
            return True
        if self.role != "scorer":
            return False
        return not self.counties or county_code in self.counties

    def can_read(self, county_code: str | None, village_code: str | None) -> bool:
        """May this caller read a decision of this county and village?"""
        if self.role == "admin":
            return True
        if self.role not in CASE_ROLES:
            return False
        return (
            (county_code is not None and county_code in self.counties)
            or (village_code is not None and village_code in self.villages)
            or (village_code is not None and village_code[:9] in self.townships)
        )

    def can_read_area(self, code: str) -> bool:
        """May this caller read the regional counts of this area (any level's code)?"""
        return self.role == "admin" or (self.role == "region" and covers(self.areas, code))

    def scope_filter(self) -> tuple[list[str] | None, list[str] | None]:
        """(county_codes, village_codes) for Ledger.latest_by_household.

        (None, None) for an admin (everything); sorted lists for a caseworker, township
        or county key (either may be empty; a township's county is listed, so rows must
        still pass ``can_read``); ([], []) for anyone else (nothing).
        """
        if self.role == "admin":
            return None, None
        if self.role in CASE_ROLES:
            counties = set(self.counties) | {t[:6] for t in self.townships}
            return sorted(counties), sorted(self.villages)
        return [], []

    def describe_scope(self) -> str:
        """A short text of the scope, for the access log."""
        if self.role == "admin":
            return "*"
        parts = [f"county:{c}" for c in sorted(self.counties)]
        parts += [f"township:{t}" for t in sorted(self.townships)]
        parts += [f"department:{d}" for d in sorted(self.departments)]
        parts += [f"village:{v}" for v in sorted(self.villages)]
        parts += [f"area:{a}" for a in sorted(self.areas)]
        return ",".join(parts)


# --------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class KeyEntry:
    """One configured key (its hash, never the token)."""

    id: str
    hash: str
    role: str
    counties: tuple[str, ...] = ()
    villages: tuple[str, ...] = ()
    source: str = ""
    townships: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()

    def principal(self) -> Principal:
        return Principal(
            self.id,
            self.role,
            frozenset(self.counties),
            frozenset(self.villages),
            frozenset(self.townships),
            frozenset(self.departments),
            frozenset(self.areas),
        )

    def as_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "hash": self.hash, "role": self.role}
        if self.counties:
            out["counties"] = list(self.counties)
        if self.villages:
            out["villages"] = list(self.villages)
        if self.townships:
            out["townships"] = list(self.townships)
        if self.departments:
            out["departments"] = list(self.departments)
        if self.areas:
            out["areas"] = list(self.areas)
        return out


def _codes(
    raw: Any, name: str, pattern: re.Pattern[str], digits: int, where: str, problems: list[str]
) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, (str, int)):
        raw = [raw]
    if not isinstance(raw, list):
        problems.append(f"{where}: {name}: must be a list of {digits}-digit codes")
        return ()
    codes: list[str] = []
    for code in raw:
        # YAML reads an unquoted 530102 as a number; no code starts with 0, so it is safe
        text = str(code) if isinstance(code, int) and not isinstance(code, bool) else code
        if not isinstance(text, str) or not pattern.match(text):
            problems.append(f"{where}: {name}: {code!r} is not a {digits}-digit code")
        elif text[:2] not in PROVINCES:
            problems.append(f"{where}: {name}: {text} does not start with a province code")
        elif text not in codes:
            codes.append(text)
    return tuple(codes)


def _departments(raw: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    """A department key's departments (codes of the alert contract, riskml.alerts)."""
    from riskml.alerts.fields import DEPARTMENT_CODES

    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        problems.append(f"{where}: departments: must be a list of department codes")
        return ()
    out: list[str] = []
    for code in raw:
        if code not in DEPARTMENT_CODES:
            problems.append(
                f"{where}: departments: {str(code)[:40]!r} is not a department "
                f"(one of {', '.join(DEPARTMENT_CODES)})"
            )
        elif code not in out:
            out.append(code)
    return tuple(out)


def _parse_entries(raw: Any, source: str) -> tuple[list[KeyEntry], list[str]]:
    """Entries from a loaded document, and every problem found."""
    problems: list[str] = []
    if raw is None:
        return [], problems
    if isinstance(raw, dict) and set(raw) <= {"keys"}:
        raw = raw.get("keys") or []
    if not isinstance(raw, list):
        return [], [f"{source}: expected a list of key entries (or a mapping with 'keys:')"]
    entries: list[KeyEntry] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(f"{source}: entry #{i + 1}: must be a mapping")
            continue
        key_id = item.get("id")
        where = f"{source}: entry {key_id!r}" if key_id else f"{source}: entry #{i + 1}"
        before = len(problems)
        unknown = sorted(str(k) for k in set(item) - _KNOWN_KEYS)
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
        if not isinstance(key_id, str) or not _ID.match(key_id):
            problems.append(
                f"{where}: id: required, 1-64 characters of A-Z a-z 0-9 _ . @ - (got {key_id!r})"
            )
        hashed = item.get("hash")
        if hashed is None:
            problems.append(f"{where}: hash: missing (store hash_token(token), never the key)")
        elif not isinstance(hashed, str) or not _HASH.match(hashed):
            problems.append(f"{where}: hash: must be 'sha256:' and 64 lowercase hex digits")
        role = item.get("role")
        if role not in ROLES:
            problems.append(f"{where}: role: unknown role {role!r} (one of {', '.join(ROLES)})")
        counties = _codes(item.get("counties"), "counties", _COUNTY, 6, where, problems)
        villages = _codes(item.get("villages"), "villages", _VILLAGE, 12, where, problems)
        townships = _codes(item.get("townships"), "townships", _TOWNSHIP, 9, where, problems)
        scoped = counties or villages or townships
        if role == "caseworker" and not scoped and len(problems) == before:
            problems.append(f"{where}: a caseworker key needs counties, townships and/or villages")
        if role == "township" and (not townships or counties or villages):
            problems.append(f"{where}: a township key is scoped by townships (9-digit codes) only")
        departments = _departments(item.get("departments"), where, problems)
        if role == "department" and (not counties or not departments or townships or villages):
            problems.append(f"{where}: a department key needs counties and departments")
        if departments and role != "department":
            problems.append(f"{where}: departments apply to department keys only")
        if role in ("county", "reporter", "assets") and (not counties or townships or villages):
            problems.append(f"{where}: a {role} key is scoped by counties only")
        areas = parse_areas(item.get("areas"), where, problems)
        if role == "region" and (not areas or scoped or departments):
            problems.append(f"{where}: a region key is scoped by areas (2, 4 or 6 digits) only")
        if areas and role != "region":
            problems.append(f"{where}: areas apply to region keys only")
        if role in ("admin", "metrics") and scoped:
            problems.append(f"{where}: counties/townships/villages do not apply to {role} keys")
        if role == "scorer" and (villages or townships):
            problems.append(f"{where}: a scorer key is scoped by counties, not villages")
        if len(problems) == before:
            entries.append(
                KeyEntry(
                    key_id, hashed, role, counties, villages, source, townships, departments, areas
                )
            )
    return entries, problems


def _check_unique(entries: list[KeyEntry]) -> list[str]:
    problems: list[str] = []
    seen_ids: dict[str, KeyEntry] = {}
    seen_hashes: dict[str, KeyEntry] = {}
    for e in entries:
        if e.id in seen_ids:
            problems.append(f"{e.source}: entry {e.id!r}: id: also used in {seen_ids[e.id].source}")
        if e.hash in seen_hashes:
            problems.append(
                f"{e.source}: entry {e.id!r}: hash: same key as entry {seen_hashes[e.hash].id!r}"
            )
        seen_ids.setdefault(e.id, e)
        seen_hashes.setdefault(e.hash, e)
    return problems


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyConfigError(
            f"{path}: cannot read the keys file: it does not exist",
            f"{path.name} is missing (deleted, renamed or never created)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise KeyConfigError(
            f"{path}: cannot read the keys file: {why}", f"{path.name}: cannot be read ({why})"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise KeyConfigError(
            f"{path}: not valid YAML: {exc}", f"{path.name}: not valid YAML{at}"
        ) from None


def load_store(file: Path | None, required: bool, raw_env: str | None) -> KeyStore:
    """Keys from ``file`` (when it exists, or always when ``required``) and the env var's text."""
    entries: list[KeyEntry] = []
    problems: list[str] = []
    sources: dict[str, str] = {}
    if file is not None and (required or file.exists()):
        sources[str(file)] = file.name
        found, bad = _parse_entries(_read_file(file), str(file))
        entries += found
        problems += bad
    if raw_env and raw_env.strip():
        sources[f"${ENV_KEYS}"] = f"${ENV_KEYS}"
        try:
            doc = json.loads(raw_env)
        except json.JSONDecodeError as exc:
            raise KeyConfigError(
                f"${ENV_KEYS}: not valid JSON: {exc.msg}",
                f"${ENV_KEYS}: not valid JSON at line {exc.lineno}, column {exc.colno}",
            ) from None
        found, bad = _parse_entries(doc, f"${ENV_KEYS}")
        entries += found
        problems += bad
    problems += _check_unique(entries)
    if problems:
        raise _invalid(problems, sources)
    return KeyStore(entries)


# --------------------------------------------------------------------------- key store
class KeyStore:
    """The configured keys; authenticates ``Authorization`` header values."""

    def __init__(self, entries: Iterable[KeyEntry] = ()):
        self.entries: tuple[KeyEntry, ...] = tuple(entries)
        problems = _check_unique(list(self.entries))
        if problems:
            raise _invalid(problems, {})

    @classmethod
    def from_entries(cls, entries: list[dict[str, Any]], source: str = "entries") -> KeyStore:
        """Keys from a list of entry dicts (validated)."""
        parsed, problems = _parse_entries(entries, source)
        if problems:
            raise _invalid(problems, {source: source})
        return cls(parsed)

    @classmethod
    def load(cls, path: str | Path | None = None, *, env: bool = True) -> KeyStore:
        """Keys from the YAML file and the ``RISKML_API_KEYS`` env var (JSON list).

        The file is ``path``, else $RISKML_API_KEYS_FILE, else api_keys.yaml in
        the state folder. A file named by argument or env var must exist; the
        default one may be absent. With no keys at all the store is empty and
        authenticates nobody.
        """
        explicit = path is not None or (env and bool(os.environ.get(ENV_FILE)))
        file = Path(path).expanduser() if path is not None else None
        if file is None:
            file = default_keys_file() if env else None
        return load_store(file, explicit, os.environ.get(ENV_KEYS) if env else None)

    def __len__(self) -> int:
        return len(self.entries)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller of an ``Authorization: Bearer <token>`` header, or None.

        None for a missing or malformed header and for an unknown token. Every
        stored hash is compared (constant time per comparison, no early exit).
        """
        found = self.entry_for(authorization)
        return found.principal() if found else None

    def entry_for(self, authorization: str | None) -> KeyEntry | None:
        """The entry of an ``Authorization: Bearer <token>`` header's key, or None (as ``authenticate``)."""
        if not authorization or not isinstance(authorization, str):
            return None
        match = _BEARER.match(authorization.strip())
        if not match:
            return None
        candidate = hash_token(match.group(1)).encode("ascii")
        found: KeyEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(candidate, entry.hash.encode("ascii")) and found is None:
                found = entry
        return found

    def principal_by_id(self, key_id: str | None) -> Principal | None:
        """The principal of the configured key with this id, or None (for sessions holding a key id).

        A session stores the key's id, never the token; looking it up on every
        request means a key removed from the store stops its sessions too.
        """
        entry = self.entry_by_id(key_id)
        return entry.principal() if entry is not None else None

    def entry_by_id(self, key_id: str | None) -> KeyEntry | None:
        """The configured entry with this id (its hash tells a re-issued key from the old one)."""
        if not key_id or not isinstance(key_id, str):
            return None
        for entry in self.entries:
            if entry.id == key_id:
                return entry
        return None


# --------------------------------------------------------------------------- adding keys
def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_key(
    path: str | Path | None,
    id: str,
    role: str,
    counties: Sequence[str] | None = None,
    villages: Sequence[str] | None = None,
    townships: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    areas: Sequence[str] | None = None,
) -> str:
    """Append a new key to the YAML file (hash only, atomic write); the raw token.

    The token is returned once and stored nowhere. ``path`` None means
    ``default_keys_file()``. Raises KeyConfigError for a bad entry, a duplicate
    id or a keys file that does not load. Comments in the file are not kept.
    """
    file = Path(path).expanduser() if path is not None else default_keys_file()
    doc = _read_file(file) if file.exists() else None
    existing, problems = _parse_entries(doc, str(file))
    if problems:
        raise KeyConfigError("the keys file has errors:\n  " + "\n  ".join(problems))
    token = new_token()
    raw_entry: dict[str, Any] = {"id": id, "hash": hash_token(token), "role": role}
    if counties:
        raw_entry["counties"] = [str(c) for c in counties]
    if villages:
        raw_entry["villages"] = [str(v) for v in villages]
    if townships:
        raw_entry["townships"] = [str(t) for t in townships]
    if departments:
        raw_entry["departments"] = [str(d) for d in departments]
    if areas:
        raw_entry["areas"] = [str(a) for a in areas]
    new, problems = _parse_entries([raw_entry], "new key")
    if problems:
        raise KeyConfigError("\n".join(problems))
    problems = _check_unique(existing + new)
    if problems:
        raise KeyConfigError("\n".join(problems))
    items = list(doc.get("keys") or []) if isinstance(doc, dict) else list(doc or [])
    item = new[0].as_yaml()
    item["created"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    items.append(item)
    header = (
        "# riskml API keys: id, sha256 hash of the token (never the token), role, scope.\n"
        "# Add keys with `riskml keys add`; delete an entry to revoke its key.\n"
    )
    body = yaml.safe_dump({"keys": items}, sort_keys=False, allow_unicode=True)
    _atomic_write(file, header + body)
    return token
