"""riskml: learned risk of rural households falling (back) into poverty."""

__version__ = "0.1.0"
