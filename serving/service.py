"""The BentoML entry of a Bento built from this repository (`bentoml build -f serving/bentofile.yaml .`).

Thin on purpose: the service is defined in the library (``riskml.service.bento``), so an
installed wheel serves the same thing (`riskml serve`).
"""

from riskml.service.bento import HouseholdRisk

__all__ = ["HouseholdRisk"]
