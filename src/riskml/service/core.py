"""The scoring service's logic, free of any web framework.

``ScoringService`` loads the model behind a registry alias (keeping a local
copy so it can start when the registry is unreachable), checks API keys,
validates requests strictly against the record schema, decides with
``riskml.decisions`` and writes every answered result to the decision ledger
before answering. ``riskml.service.bento`` (BentoML) and ``riskml.service.api``
(FastAPI routes mounted on it) only translate HTTP to these calls.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from riskml import config
from riskml.data import schema
from riskml.data.reference import default_lines
from riskml.model.risk_model import RiskModel
from riskml.policy.rules import RuleSet
from riskml.scoring import online
from riskml.scoring.decide import ModelInfo
from riskml.service.access import CASE_ROLES, KeyStore, Principal
from riskml.service.live_keys import LiveKeys
from riskml.service.loading import LoadedModel, Settings, fetch_model
from riskml.service.side_inputs import SideInputs
from riskml.store.ledger import (
    IDEMPOTENCY_KEY_RULE,
    IdempotencyConflict,
    Ledger,
    LedgerError,
    request_digest,
)

log = logging.getLogger("riskml.serving")
NO_KEYS = KeyStore()  # in force while the keys fail: nobody authenticates

MAX_RECORDS = 1000
MAX_PROBLEMS = online.MAX_PROBLEMS  # problems listed in a 422 (problems_total counts them all)
EXPLAIN_MODES = ("flagged", "all", "none")


@dataclass
class Reply:
    """An HTTP-agnostic answer: status code and JSON body."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _problem(
    index: int | None, field_: str, problem: str, household_id: str | None = None
) -> dict[str, Any]:
    return {"index": index, "household_id": household_id, "field": field_, "problem": problem}


def _replayed(stored: Any) -> Reply:
    """The answer a request with this idempotency key got the first time, from the ledger."""
    results = [{k: v for k, v in r.items() if k != "contributions"} for r in stored.results]
    return Reply(
        200, {"results": results, "request_id": stored.request_id}, {"Idempotent-Replayed": "true"}
    )


def _conflict(exc: Any) -> dict[str, Any]:
    first = getattr(exc, "request_id", None)
    return _problem(
        None,
        "Idempotency-Key",
        "already used by this caller for a different request"
        + (f" (request_id {first})" if first else "")
        + "; use a new key for a new request",
    )


def _refused(
    error: str, problems: list[dict[str, Any]], total: int | None = None, status: int = 422
) -> Reply:
    """A refusal (422 by default) listing the first MAX_PROBLEMS problems and counting them all."""
    total = len(problems) if total is None else total
    body: dict[str, Any] = {"error": error, "problems": problems[:MAX_PROBLEMS]}
    body["problems_total"] = total
    return Reply(status, body)


NOT_FOUND = {"error": "no such household or decision in your key's scope"}
# names no place: a scorer learns only that the household is registered elsewhere
MOVE_RULE = (
    "the household is registered at another {what}; moving it is an admin's act "
    "(POST /admin/households/{{household_id}}/move), not a scorer's"
)


# --------------------------------------------------------------------------- the service
class ScoringService:
    def __init__(
        self,
        settings: Settings | None = None,
        on_decisions: Callable[[list[dict[str, Any]]], None] | None = None,
    ):
        self.settings = settings or Settings.from_env()
        self.ledger = Ledger(self.settings.ledger_url or config.ledger_url())
        self.side_inputs = SideInputs(self.ledger)
        # re-read within 2 s of a change; fails closed (KeyConfigError at start, as before)
        self.live_keys = LiveKeys(self.settings.keys_file)
        self.ruleset = RuleSet.load(self.settings.rules_file)
        self.on_decisions = on_decisions
        self._loaded: LoadedModel | None = None
        self._in_force: tuple[Any, Any, RiskModel] | None = None
        self._load_error: str | None = None
        self._reload_lock = threading.Lock()
        self.load()
        # the ledger's writability, checked off the request path (readiness answers from it)
        self._ledger_ok = self.ledger.writable()
        self._closed = threading.Event()
        threading.Thread(target=self._watch_ledger, name="riskml-ledger-check", daemon=True).start()

    LEDGER_CHECK_S = 2.0

    def _watch_ledger(self) -> None:
        while not self._closed.wait(self.LEDGER_CHECK_S):
            try:
                self._ledger_ok = self.ledger.writable()
            except Exception:  # any failure to check is "not writable"
                self._ledger_ok = False

    def close(self) -> None:
        """Stop the background ledger check (the ledger itself is left open)."""
        self._closed.set()

    # ---------------------------------------------------------------- model
    def load(self) -> None:
        try:
            loaded = fetch_model(self.settings)
        except Exception as exc:
            self._load_error = config.redact_urls(str(exc))
            log.error("model not loaded: %s", self._load_error)
            return
        loaded.info["alias"] = self.settings.alias
        loaded.info["loaded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._loaded = (
            loaded  # one reference swap: requests in flight keep the model they started with
        )
        self._load_error = None

    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    def scoring_model(self, loaded: LoadedModel | None = None) -> RiskModel:
        """The loaded model with the lines in force (``RiskModel.in_force``).

        Rebuilt when the model or the operated lines change (``default_lines``
        re-reads the file when it changes), so ``riskml lines add`` takes
        effect without a restart.
        """
        loaded = loaded or self._loaded
        if loaded is None:
            raise RuntimeError("no model loaded")
        operated = default_lines()
        cached = self._in_force
        if cached is not None and cached[0] is loaded and cached[1] is operated:
            return cached[2]
        model = loaded.model.in_force(operated)
        self._in_force = (loaded, operated, model)
        return model

    def lines_info(self, loaded: LoadedModel) -> dict[str, Any]:
        """Which lines a decision uses: the model's own copy, then the operated table, then carry-forward."""
        from riskml.data.operated_lines import operated_file

        operated = default_lines()
        return {
            "rule": (
                "the model's own copy of the lines for the years it carries (what it was trained "
                "with); the operated table (shipped defaults and `riskml lines` entries) for every "
                "other year; a year with neither takes the latest earlier year's lines as "
                "'provisional' for at most carry_forward_months; outside that, 422"
            ),
            "model_years": loaded.model.lines.years,
            "operated_years": operated.years,
            "operated_file": operated_file().name,
            "carry_forward_months": operated.carry_forward_months,
        }

    def readiness(self) -> Reply:
        loaded = self._loaded
        ledger_ok = self._ledger_ok  # refreshed every LEDGER_CHECK_S by a background thread
        body: dict[str, Any] = {
            "ready": bool(loaded) and ledger_ok,
            "ledger_writable": ledger_ok,
            "worker": os.getpid(),  # which of several workers answered
        }
        if loaded is None:
            body["model"] = None
            body["reason"] = f"no model loaded: {self._load_error}"
        else:
            body["model"] = {k: loaded.info.get(k) for k in ("name", "version", "alias", "source")}
            if loaded.info.get("source") == "cache":
                body["warning"] = (
                    f"serving the last good cached copy: {loaded.info.get('cache_reason')}"
                )
        if not ledger_ok:
            body["reason"] = (
                body.get("reason", "") + "; " if "reason" in body else ""
            ) + "ledger is not writable"
        from riskml.service import assets_api  # the asset model: reported, never a condition

        desk = assets_api.current_desk(self)
        if desk is not None:
            body["assets"] = desk.readiness()
        keys_error = self.live_keys.error
        if keys_error is not None:
            body["ready"] = False
            body["reason"] = (body["reason"] + "; " if "reason" in body else "") + (
                f"keys file invalid: {keys_error}"
            )
        return Reply(200 if body["ready"] else 503, body)

    def model_info(self) -> Reply:
        loaded = self._loaded
        if loaded is None:
            return Reply(503, {"error": f"no model loaded: {self._load_error}"})
        m = loaded.model
        return Reply(
            200,
            {
                **{
                    k: loaded.info.get(k)
                    for k in ("name", "version", "alias", "run_id", "source", "loaded_at")
                },
                "trained": {
                    k: m.metadata.get(k) for k in ("train_periods", "valid_period", "test_period")
                },
                "metrics": loaded.info.get("metrics", {}),
                "thresholds": m.thresholds.__dict__,
                "rules_version": self.ruleset.version,
                "reference_lines": self.lines_info(loaded),
                "features": list(m.feature_names),
            },
        )

    def reload(self, authorization: str | None) -> Reply:
        principal, denied = self._authorize(authorization, "admin")
        if denied:
            return denied
        with self._reload_lock:
            before = self._loaded.info.get("version") if self._loaded else None
            try:
                loaded = fetch_model(self.settings)
            except Exception as exc:
                return Reply(
                    503,
                    {
                        "error": f"reload failed, still serving version {before}: "
                        f"{config.redact_urls(str(exc))}"
                    },
                )
            loaded.info["alias"] = self.settings.alias
            loaded.info["loaded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._loaded = loaded
        return Reply(
            200,
            {"previous_version": before, "version": loaded.info.get("version"), "by": principal.id},
        )

    # ---------------------------------------------------------------- auth
    def current_keys(self) -> KeyStore:
        """The keys in force, re-read within 2 s of a change to the keys file or $RISKML_API_KEYS;
        an empty store while either is missing or invalid, so every keyed request is refused."""
        store = self.live_keys.current()
        return store if store is not None else NO_KEYS

    def _authorize(
        self, authorization: str | None, need: str
    ) -> tuple[Principal | None, Reply | None]:
        principal = self.current_keys().authenticate(authorization)
        if principal is None:
            return None, Reply(
                401, {"error": "missing or invalid API key"}, {"WWW-Authenticate": "Bearer"}
            )
        allowed = {
            "score": principal.can_score(),
            "admin": principal.can_admin(),
            "read": principal.role in (*CASE_ROLES, "admin"),
        }
        if not allowed[need]:
            return principal, Reply(403, {"error": f"role {principal.role} may not {need}"})
        return principal, None

    def authenticate(self, authorization: str | None) -> Principal | None:
        return self.current_keys().authenticate(authorization)

    # ---------------------------------------------------------------- scoring
    def score(
        self, body: Any, authorization: str | None, idempotency_key: str | None = None
    ) -> Reply:
        """Validate, decide, store, answer. With an ``Idempotency-Key``, a retried request
        (same caller, key and body) is answered with the decisions stored the first time."""
        principal, denied = self._authorize(authorization, "score")
        if denied:
            return denied
        loaded = self._loaded
        if loaded is None:
            return Reply(503, {"error": f"not ready: no model loaded ({self._load_error})"})
        request_problems = self._check_envelope(body)
        if request_problems:
            return _refused("invalid request", request_problems)
        caller = f"{principal.role}:{principal.id}"
        digest = request_digest(body) if idempotency_key is not None else None
        if idempotency_key is not None and digest is not None:
            try:
                prior = self.ledger.replay(
                    caller=caller, idempotency_key=idempotency_key, request_digest=digest
                )
            except IdempotencyConflict as exc:
                return _refused("idempotency key reused", [_conflict(exc)])
            except ValueError:
                return _refused(
                    "invalid request", [_problem(None, "Idempotency-Key", IDEMPOTENCY_KEY_RULE)]
                )
            if prior is not None:
                return _replayed(prior)
        households = body["households"]
        refused, results, entries = self.decide_records(
            households, body.get("explain", "flagged"), loaded, principal
        )
        if refused is not None:
            return refused
        request_id = uuid.uuid4().hex
        try:
            if idempotency_key is None or digest is None:
                self.ledger.record(entries, caller=caller, request_id=request_id)
            else:
                stored = self.ledger.record_once(
                    entries,
                    caller=caller,
                    request_id=request_id,
                    idempotency_key=idempotency_key,
                    request_digest=digest,
                )
                if stored.replayed:  # a concurrent twin committed first: answer its decisions
                    return _replayed(stored)
        except IdempotencyConflict as exc:
            return _refused("idempotency key reused", [_conflict(exc)])
        except LedgerError as exc:
            log.error("ledger write failed for request %s: %s", request_id, type(exc).__name__)
            return Reply(
                503, {"error": "the decision ledger could not be written; nothing was answered"}
            )
        if self.on_decisions is not None:
            self.on_decisions(results)
        for res in results:
            res.pop("contributions", None)
        return Reply(200, {"results": results, "request_id": request_id})

    def decide_records(
        self,
        households: list[Any],
        explain: str,
        loaded: LoadedModel,
        principal: Principal,
        *,
        write_scope: bool = True,
    ) -> tuple[Reply | None, list[dict[str, Any]], list[dict[str, Any]]]:
        """Validate records strictly and decide them (nothing stored): (refusal, results, entries).

        The one decision path of ``/score`` and of a case visit's record: the schema, a line in
        force, the key's write scope (``write_scope``; a visit is scoped by the case roles) and
        the household's registered place, then rules, model and reasons.
        """
        model = self.scoring_model(loaded)
        refusal = online.record_refusals(households, model)
        if refusal is not None:
            message, problems, total = refusal
            return _refused(message, problems, total=total), [], []
        refused = self._where_refused(principal, households, write_scope=write_scope)
        if refused is not None:
            return refused, [], []
        info = ModelInfo(loaded.info["name"], str(loaded.info["version"]))
        side = self.side_inputs.for_model(model.feature_names)
        results, entries = online.decide_records(
            households, self.ledger, model, self.ruleset, info, explain, side=side
        )
        return None, results, entries

    def _where_refused(
        self, principal: Principal, households: list[dict[str, Any]], write_scope: bool = True
    ) -> Reply | None:
        """403 for records outside the key's write scope; 409 for a household somewhere else
        than where it is registered (moving it is an admin's act); None when all may be written."""

        def hid(i: int) -> str | None:
            return schema.pseudonymous_id(households[i]["household_id"])

        outside = [
            _problem(
                i,
                "county_code",
                f"county {r['county_code']} is outside this key's write scope",
                hid(i),
            )
            for i, r in enumerate(households)
            if write_scope and not principal.can_write(r["county_code"])
        ]
        if outside:
            return _refused(
                f"{len(outside)} record(s) outside this key's counties; nothing was scored",
                outside,
                status=403,
            )
        try:
            registered = self.ledger.locations([r["household_id"] for r in households])
        except LedgerError:
            return Reply(
                503, {"error": "the decision ledger could not be read; nothing was scored"}
            )
        moved = []
        for i, r in enumerate(households):
            at = registered.get(r["household_id"])
            if at is not None and (r["county_code"], r["village_code"]) != at:
                field_ = "county_code" if r["county_code"] != at[0] else "village_code"
                rule = MOVE_RULE.format(what="county" if field_ == "county_code" else "village")
                moved.append(_problem(i, field_, rule, hid(i)))
        if moved:
            return _refused(
                f"{len(moved)} record(s) of households registered elsewhere; nothing was scored",
                moved,
                status=409,
            )
        return None

    def move_household(self, household_id: str, body: Any, authorization: str | None) -> Reply:
        """An admin moves a household to another county and village (kept in the ledger)."""
        principal, denied = self._authorize(authorization, "admin")
        if denied:
            return denied
        problems = _move_problems(body)
        if problems:
            return _refused("invalid move", problems)
        if not self.ledger.locations([household_id]):
            return Reply(404, NOT_FOUND)
        to = (body["county_code"], body["village_code"])
        try:
            move = self.ledger.record_move(
                household_id, to, body["reason"].strip(), f"{principal.role}:{principal.id}"
            )
        except LedgerError:
            return Reply(
                503, {"error": "the decision ledger could not be written; nothing was moved"}
            )
        return Reply(
            200,
            {
                k: move[k]
                for k in (
                    "household_id",
                    "from_county",
                    "from_village",
                    "to_county",
                    "to_village",
                    "reason",
                    "created_at",
                )
            },
        )

    @staticmethod
    def _check_envelope(body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            return [_problem(None, "(body)", "must be a JSON object with a 'households' list")]
        problems = []
        unknown = set(body) - {"households", "explain"}
        for k in sorted(unknown):
            problems.append(
                _problem(
                    None, k, "unknown field; the request has 'households' and optional 'explain'"
                )
            )
        hh = body.get("households")
        if hh is None:
            problems.append(_problem(None, "households", "required field is missing"))
        elif not isinstance(hh, list):
            problems.append(_problem(None, "households", "must be a list of household records"))
        elif not 1 <= len(hh) <= MAX_RECORDS:
            problems.append(
                _problem(None, "households", f"must hold 1 to {MAX_RECORDS} records, got {len(hh)}")
            )
        explain = body.get("explain", "flagged")
        if explain not in EXPLAIN_MODES:
            problems.append(_problem(None, "explain", f"must be one of {list(EXPLAIN_MODES)}"))
        return problems

    # ---------------------------------------------------------------- reading decisions
    def decision(self, decision_id: str, authorization: str | None) -> Reply:
        principal, denied = self._authorize(authorization, "read")
        if denied:
            return denied
        d = self.ledger.get(decision_id)
        if d is None:
            return Reply(404, NOT_FOUND)
        here = self.ledger.locations([d["household_id"]]).get(d["household_id"])
        if not principal.can_read(*(here or (d["county_code"], d["village_code"]))):
            return Reply(404, NOT_FOUND)  # one answer: out of scope says nothing of existence
        self.ledger.log_access(
            principal.id, principal.role, "read_decision", household_id=d["household_id"]
        )
        return Reply(200, d)

    def household_decisions(self, household_id: str, authorization: str | None) -> Reply:
        principal, denied = self._authorize(authorization, "read")
        if denied:
            return denied
        here = self.ledger.locations([household_id]).get(household_id)
        if here is None or not principal.can_read(*here):
            return Reply(404, NOT_FOUND)  # one answer for unknown and out of scope
        history = self.ledger.household_history(household_id)
        self.ledger.log_access(
            principal.id, principal.role, "read_household", household_id=household_id
        )
        return Reply(200, {"household_id": household_id, "decisions": history})


def _move_problems(body: Any) -> list[dict[str, Any]]:
    """A move's body: county_code, village_code (inside it, known province) and a reason."""
    if not isinstance(body, dict):
        return [
            _problem(None, "(body)", "must be a JSON object with county_code, village_code, reason")
        ]
    out = [
        _problem(None, k, "unknown field")
        for k in sorted(set(body) - {"county_code", "village_code", "reason"})
    ]
    by_name = {f.name: f for f in schema.FIELDS}
    for name in ("county_code", "village_code"):
        v = body.get(name)
        pattern = by_name[name].pattern or ""
        if not isinstance(v, str) or not re.fullmatch(pattern, v):
            out.append(_problem(None, name, f"must match {pattern}"))
    county, village = body.get("county_code"), body.get("village_code")
    if isinstance(county, str) and isinstance(village, str) and not out:
        out += [
            _problem(None, f, rule)
            for f, rule in schema.cross_field_problems(
                {"county_code": county, "village_code": village}
            )
        ]
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        out.append(_problem(None, "reason", "say why the household moves (1 to 500 characters)"))
    return out
