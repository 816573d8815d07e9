"""The API keys in force in a running service: re-read when they change, failing closed.

``LiveKeys`` checks the keys file and the ``RISKML_API_KEYS`` env var every 2 s and re-reads
them when they change; while the file is missing, unreadable or invalid (or the env var is),
no key is accepted and ``LiveKeys.error`` says why (naming the file, never its content).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from riskml.service.access import (
    ENV_FILE,
    ENV_KEYS,
    KeyConfigError,
    KeyStore,
    Principal,
    default_keys_file,
    load_store,
)

log = logging.getLogger("riskml.keys")


# --------------------------------------------------------------------------- keys in force
class LiveKeys:
    """The keys a running service accepts: re-read within ``RECHECK_S`` of a change, failing closed.

    Every ``RECHECK_S`` seconds (at most; on the next call) the keys file's stamp
    (inode, size, modification and change times) and the text of ``$RISKML_API_KEYS``
    are compared with those last read; when either changed, both are read again.

    - A valid change takes effect at once (a revoked key stops, a re-issued one starts).
    - A keys file that is missing, unreadable or invalid (or an invalid env var) puts
      *no* keys in force: ``current()`` is None, so nobody authenticates, and ``error``
      says why (the file's name and the kind of fault, never its content) until a valid
      file is back. The file is required when it was named (argument or
      ``$RISKML_API_KEYS_FILE``) or has been seen once; the default file may be absent
      before it is first created (keys then come from the env var only).

    ``strict`` (the default) raises the KeyConfigError of a first load that fails, so a
    service does not start on bad keys. Thread-safe.
    """

    RECHECK_S = 2.0

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        env: bool = True,
        strict: bool = True,
        recheck_s: float | None = None,
        clock: Any = time.monotonic,
    ):
        self.env = env
        self.path: Path | None = Path(path).expanduser() if path is not None else None
        if self.path is None and env:
            self.path = default_keys_file()
        self._required = path is not None or (env and bool(os.environ.get(ENV_FILE)))
        self._recheck_s = recheck_s
        self._clock = clock
        self._lock = threading.Lock()
        self._signature: Any = object()  # matches nothing: the first check reads
        self._state: tuple[KeyStore | None, str | None] = (None, None)
        self._checked = clock()
        first = self._refresh()
        if strict and first is not None:
            raise first

    @property
    def recheck_s(self) -> float:
        return type(self).RECHECK_S if self._recheck_s is None else self._recheck_s

    def current(self) -> KeyStore | None:
        """The keys in force, or None while they fail (no key is then accepted)."""
        return self.status()[0]

    @property
    def error(self) -> str | None:
        """Why no keys are in force (None when they are): a line naming the file, never its content."""
        return self.status()[1]

    def status(self) -> tuple[KeyStore | None, str | None]:
        """(keys in force or None, error or None), checked for changes first when due."""
        if self._clock() - self._checked >= self.recheck_s:
            with self._lock:
                now = self._clock()
                if now - self._checked >= self.recheck_s:
                    self._refresh()
                    self._checked = now
        return self._state

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller of an ``Authorization`` header by the keys in force; None while they fail."""
        store = self.current()
        return store.authenticate(authorization) if store is not None else None

    def _stamp(self) -> tuple[int, int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _refresh(self) -> KeyConfigError | None:
        """Read again when the file or the env var changed; the load's error, if any."""
        stamp = self._stamp()
        raw_env = os.environ.get(ENV_KEYS) if self.env else None
        signature = (stamp, raw_env)
        if signature == self._signature:
            return None
        self._signature = signature
        if stamp is not None:
            self._required = True  # seen once: from now on its absence is a fault
        before = self._state[1]
        try:
            store = load_store(self.path, self._required, raw_env)
        except Exception as error:  # any failure to load puts no keys in force
            exc = error if isinstance(error, KeyConfigError) else KeyConfigError(
                f"API keys could not be loaded: {type(error).__name__}",
                f"{self.path.name if self.path else f'${ENV_KEYS}'}: could not be loaded "
                f"({type(error).__name__})",
            )  # fmt: skip
            self._state = (None, exc.summary)
            if exc.summary != before:
                log.error("API keys not in force, every keyed request is refused: %s", exc.summary)
            return exc
        self._state = (store, None)
        if before is not None:
            log.warning("API keys in force again (%d key(s))", len(store))
        return None
