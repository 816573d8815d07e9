"""The BentoML scoring service: thin HTTP over riskml.service.core.

Start it with `riskml serve` (or `bentoml serve riskml.service.bento:HouseholdRisk`).
Configuration comes from the environment (see riskml.service.core.Settings).
"""

from __future__ import annotations

import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import json  # noqa: E402
from typing import Any  # noqa: E402

import bentoml  # noqa: E402
import prometheus_client as prom  # noqa: E402

# light at import: BentoML's supervisor process imports this module for its configuration
# only; the model, the ledger and the pages load in the worker (HouseholdRisk.__init__)
from riskml import config  # noqa: E402
from riskml.service import api as web  # noqa: E402

# in riskml's registry, served at GET /metrics (riskml.service.api)
FLAGS = prom.Counter(
    "riskml_flags",
    "Flagged households by rule and by risk level",
    ["kind", "value"],
    registry=web.METRICS,
)
SCORED = prom.Counter("riskml_scored", "Households scored", ["level"], registry=web.METRICS)


class _NotJson:
    """A body that is not JSON: the service answers it as a body that is not an object."""


NOT_JSON = _NotJson()


def _json_int(text: str) -> int | float:
    """A JSON integer; one too long for Python's int parser (4,300 digits) is out of range anyway."""
    if len(text) > 4000:
        return float("-inf") if text.startswith("-") else float("inf")
    return int(text)


def _count(results: list[dict[str, Any]]) -> None:
    for r in results:
        SCORED.labels(level=r["risk_level"]).inc()
        if r["flagged"]:
            FLAGS.labels(kind="level", value=r["risk_level"]).inc()
            for by in r["flagged_by"]:
                FLAGS.labels(kind="flagged_by", value=by).inc()
            for rule in r["rules"]:
                FLAGS.labels(kind="rule", value=rule["id"]).inc()


@bentoml.service(
    name="household_risk",
    # several workers share the keys file, the ledger and the session secret (config)
    workers=config.service_workers(),
    traffic={"timeout": 60, "max_concurrency": 64},
    http={"port": int(os.environ.get("RISKML_PORT", "3000"))},
    # BentoML's access log writes raw paths (household ids); riskml.web logs redacted ones
    logging={"access": {"enabled": False}},
    # BentoML's metrics label series with raw paths (household ids, any path a client
    # sends) and answer outside the key guard: off, and its /metrics route with them;
    # riskml serves its own, by route template (riskml.service.api)
    metrics={"enabled": False},
)
@bentoml.asgi_app(web.app, path="/")
class HouseholdRisk:
    def __init__(self) -> None:
        from riskml.service.core import ScoringService

        web.install_log_redaction()
        self.core = ScoringService(on_decisions=_count)
        web.bind(self.core)
        web.route_template("/")  # the metrics' route table, read now rather than in a request

    def __is_ready__(self) -> bool:
        return self.core.readiness().status == 200

    @bentoml.api(route="/score")
    def score(self, body: str = "{}", /, *, ctx: bentoml.Context) -> dict[str, Any]:
        """Score 1 to 1,000 household records: rules, calibrated score, decision, reasons, measures.

        The body comes as sent and is parsed here, so that the service checks the whole
        envelope itself: a key the contract does not know, a body that is not an object
        or not JSON at all is a 422 naming it (BentoML's input model would drop unknown
        keys unseen, and answer 500 to a body that is not JSON).
        """
        try:
            payload: Any = json.loads(body, parse_int=_json_int)
        except (ValueError, RecursionError):  # not JSON, or nested past Python's stack
            payload = NOT_JSON
        headers = ctx.request.headers
        reply = self.core.score(
            payload, headers.get("authorization"), headers.get("idempotency-key")
        )
        # BentoML sends the status and headers set on the context, whatever is returned
        ctx.response.status_code = reply.status
        ctx.response.metadata.update({**web.NO_STORE, **reply.headers})
        return reply.body


# outermost first: every request is counted; the probes and the contract answer before the
# key guard; a body over the limit, or not JSON where JSON is due, is refused (and logged)
# before anything parses it
HouseholdRisk.add_asgi_middleware(web.MetricsMiddleware)
HouseholdRisk.add_asgi_middleware(web.ProbeMiddleware)
HouseholdRisk.add_asgi_middleware(web.AccessLogMiddleware)  # outside the key guard: 401s logged
HouseholdRisk.add_asgi_middleware(web.KeyRequiredMiddleware)
HouseholdRisk.add_asgi_middleware(web.JsonErrorsMiddleware)
HouseholdRisk.add_asgi_middleware(web.BodyLimitMiddleware)
HouseholdRisk.add_asgi_middleware(web.JsonBodyMiddleware)
