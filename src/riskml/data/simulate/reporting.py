"""Simulator version 2: measurement error in reported income.

``report_incomes`` turns a year's true incomes into what the record shows: each
income field times a lognormal error (mean 1), less earned income for
under-reporting households, and coarse rounding (heaping) for some households.
The label is computed from the records, so it is the reported income that
decides it (as in the mechanism, which only sees records).
"""

from __future__ import annotations

import numpy as np

from .constants import F32
from .latent import Latent, V2Params

REPORTED_FIELDS = ("income_wage", "income_business", "income_property", "income_transfer")


def report_incomes(
    true: dict[str, np.ndarray], lat: Latent, p: V2Params, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The four income fields as reported, from the true ones (R,) each; draws 4 normals per row."""
    R = lat.resilience.shape[0]
    z = rng.standard_normal((R, 4), dtype=F32)
    sds = (p.report_sd_wage, p.report_sd_business, p.report_sd_property, p.report_sd_transfer)
    under = np.where(lat.underreport, F32(p.underreport_factor), F32(1))
    unit = np.where(lat.heaping, F32(p.heaping_unit), F32(1))
    out: dict[str, np.ndarray] = {}
    for j, (name, sd) in enumerate(zip(REPORTED_FIELDS, sds, strict=True)):
        v = true[name] * np.exp(F32(sd) * z[:, j] - F32(0.5 * sd * sd))
        if name in ("income_wage", "income_business"):
            v = np.where(v > 0, v * under, v)
        out[name] = np.round(v / unit) * unit
    return out
