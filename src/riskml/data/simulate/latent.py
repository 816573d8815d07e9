"""Simulator version 2: its parameters and the latent household state it adds to version 1.

``V2Params`` holds the knobs of the harder world (persistent earnings, unobserved
resilience, detection and support, measurement error in reported income);
``StateV2`` is a version-1 ``State`` plus the ``Latent`` arrays, none of which any
record field shows; ``init_latent`` draws them for new households.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .constants import F32
from .state import State


@dataclass(frozen=True)
class V2Params:
    """Parameters of simulator version 2 (defaults: the version-2 world).

    Earnings: log earned income (wages, positive operating income) gets a
    household term ``resilience_income × resilience`` (unobserved), an AR(1)
    deviation (``rho``; innovation ``deviation_sd``) and a transitory shock
    (``transitory_sd``), centred so the mean multiplier is ``exp(earnings_shift)``
    (under-reporting and the wider spread otherwise raise the base rate). Exposure: out-of-pocket medical costs and losses scale with
    ``exp(-resilience_exposure × resilience)``. Detection: each year the
    ``capacity`` share of households with the highest noisy rule score
    (``detection_noise``) is detected and supported the next year: income support of
    ``support_pc_line`` × the monitoring line per member, and cover of
    ``medical_cover`` / ``loss_cover`` of medical costs and losses. Reporting:
    reported income = true × lognormal error (``report_sd_*``), under-reporting
    households (``underreport_share``, persistent) report ``underreport_factor``
    of positive earned income, and heaping households (``heaping_share``) round
    to ``heaping_unit`` yuan.
    """

    rho: float = 0.7
    deviation_sd: float = 0.22
    transitory_sd: float = 0.15
    resilience_income: float = 0.25
    resilience_exposure: float = 0.3
    earnings_shift: float = 0.1  # brings the base rate near version 1's (about 12% against 8%)
    capacity: float = 0.08
    detection_noise: float = 0.3
    support_pc_line: float = 0.3
    medical_cover: float = 0.5
    loss_cover: float = 0.5
    report_sd_wage: float = 0.20
    report_sd_business: float = 0.30
    report_sd_property: float = 0.30
    report_sd_transfer: float = 0.05
    underreport_share: float = 0.15
    underreport_factor: float = 0.75
    heaping_share: float = 0.35
    heaping_unit: float = 500.0

    def __post_init__(self) -> None:
        if not 0 <= self.rho < 1:
            raise ValueError(f"V2Params.rho must be in [0, 1), got {self.rho}")
        for name in (
            "capacity",
            "medical_cover",
            "loss_cover",
            "underreport_share",
            "heaping_share",
        ):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"V2Params.{name} must be in [0, 1], got {v}")
        if not 0 < self.underreport_factor <= 1:
            raise ValueError(
                f"V2Params.underreport_factor must be in (0, 1], got {self.underreport_factor}"
            )
        nonnegative = ("support_pc_line", "detection_noise", "heaping_unit")
        for f in fields(self):
            v = getattr(self, f.name)
            if (
                f.name.endswith("_sd") or f.name.startswith("report_sd") or f.name in nonnegative
            ) and v < 0:
                raise ValueError(f"V2Params.{f.name} must be ≥ 0, got {v}")

    @property
    def log_var(self) -> float:
        """Stationary variance of the log earnings multiplier (for centring it)."""
        return (
            self.resilience_income**2
            + self.deviation_sd**2 / (1 - self.rho**2)
            + self.transitory_sd**2
        )


@dataclass
class Latent:
    """What version 2 adds to a household's state (R,); no record field shows any of it."""

    resilience: np.ndarray  # N(0, 1): earnings and shock exposure
    deviation: np.ndarray  # AR(1) deviation of log earnings
    underreport: np.ndarray  # bool: reports less earned income than it has
    heaping: np.ndarray  # bool: rounds reported income coarsely
    supported: np.ndarray  # bool: detected last year, supported this year


@dataclass
class StateV2:
    """A version-1 ``State`` and the version-2 latent arrays of the same R households."""

    base: State
    lat: Latent

    def repeat(self, k: int) -> StateV2:
        """Each household k times in a row (rows h*k … h*k+k-1 are household h)."""
        lat = Latent(**{f.name: np.repeat(getattr(self.lat, f.name), k) for f in fields(Latent)})
        return StateV2(self.base.repeat(k), lat)

    def take(self, idx: np.ndarray, width: int) -> StateV2:
        """Rows ``idx``, with the first ``width`` member slots."""
        base = State(
            **{
                f.name: (v[idx, :width] if v.ndim == 2 else v[idx])
                for f in fields(State)
                for v in (getattr(self.base, f.name),)
            }
        )
        lat = Latent(**{f.name: getattr(self.lat, f.name)[idx] for f in fields(Latent)})
        return StateV2(base, lat)


def init_latent(base: State, p: V2Params, rng: np.random.Generator) -> Latent:
    """Latent version-2 traits of new households; resilience correlates (about 0.3) with ability."""
    n = base.alive.shape[0]
    z = rng.standard_normal((n, 2), dtype=F32)
    u = rng.random((n, 2), dtype=F32)
    # ability has a standard deviation of about 0.75: resilience ≈ 0.3 × standardised ability
    resilience = (0.4 * base.ability + 0.95 * z[:, 0]).astype(F32)
    deviation = (p.deviation_sd / np.sqrt(1 - p.rho**2) * z[:, 1]).astype(F32)
    return Latent(
        resilience=resilience,
        deviation=deviation,
        underreport=u[:, 0] < p.underreport_share,
        heaping=u[:, 1] < p.heaping_share,
        supported=np.zeros(n, bool),
    )
