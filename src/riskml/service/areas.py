"""A region key's areas (``riskml.service.access``): provinces, prefectures and counties.

An area is written as the leading digits of the codes within it: a province ``53`` (2
digits), a prefecture ``5323`` (4), a county ``532328`` (6). ``area_prefix`` turns any area
code of the regional table (``532300`` for a prefecture, a township's 9 or a village's 12
digits) into those digits, so a key covers an area when the area's prefix starts with one of
the key's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from riskml.data.regions import PROVINCES

# 2, 4 or 6 digits, no pair after the province's "00" (5300 and 532300 name no area a key holds)
AREA = re.compile(r"^[0-9]{2}(?:(?!00)[0-9]{2}){0,2}$")


def area_prefix(code: str) -> str:
    """The digits that name an area: ``53`` and ``530000`` -> ``53``, ``532300`` -> ``5323``,
    a county's, township's or village's code itself ("" for anything else)."""
    if not code.isascii() or not code.isdigit() or len(code) not in (2, 4, 6, 9, 12):
        return ""
    if len(code) == 6 and code.endswith("0000"):
        return code[:2]
    if len(code) == 6 and code.endswith("00"):
        return code[:4]
    return code


def covers(areas: Iterable[str], code: str) -> bool:
    """Does one of ``areas`` hold the area of ``code``?"""
    prefix = area_prefix(code)
    return bool(prefix) and any(prefix.startswith(a) for a in areas)


def parse_areas(raw: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    """The areas of a key entry (``None``: none); each bad one is a line in ``problems``."""
    if raw is None:
        return ()
    if isinstance(raw, (str, int)) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list):
        problems.append(f"{where}: areas: must be a list of 2, 4 or 6-digit area codes")
        return ()
    out: list[str] = []
    for code in raw:
        # YAML reads an unquoted 53 as a number; no area code starts with 0
        text = str(code) if isinstance(code, int) and not isinstance(code, bool) else code
        if not isinstance(text, str) or not AREA.match(text):
            problems.append(
                f"{where}: areas: {str(code)[:20]!r} is not a 2-digit province, 4-digit "
                "prefecture or 6-digit county code (a prefecture 5323, not 532300)"
            )
        elif text[:2] not in PROVINCES:
            problems.append(f"{where}: areas: {text} does not start with a province code")
        elif text not in out:
            out.append(text)
    return tuple(out)
