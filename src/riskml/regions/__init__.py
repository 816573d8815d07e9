"""Regions: under-developed areas watched and supported as areas (issue 17)."""
