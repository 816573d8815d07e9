"""The regional pages' part of the OpenAPI document (``riskml.service.pages.region_pages``).

``region_page_paths`` takes the caseworker pages' ``page`` builder (session cookie, language,
the common answers) and the HTML answer, so the regional pages document like the others.
"""

from __future__ import annotations

from typing import Any

STR: dict[str, Any] = {"type": "string"}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": STR}


def _query(name: str, **schema_: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema_ or STR}


def _text(media: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": STR}}}


def region_page_paths(page: Any, html: dict) -> dict[str, Any]:
    """The regional pages (riskml.service.pages.region_pages, docs/region-pages.md)."""
    period = _query("period", type="string", pattern="^[0-9]{4}-[0-9]{2}$")
    code = [_path("code", "an area: 53, 532300, 532328, 532328101 or 532328101201"), period]
    csv = _text("text/csv", "the table (UTF-8 with BOM)")
    refused = {"403": {"description": "not a region or admin key, or an area outside the "
                       "key's (an HTML page)"}}  # fmt: skip
    area = {**refused, "404": {"description": "not an area code (an HTML page)"}}
    # fmt: off
    return {
        "/cw/regions": page("cw_regions", "The key's areas (one area: 303 to its page)", html,
                            [period], refused),
        "/cw/regions.csv": page("cw_regions_csv", "The key's areas as CSV", csv, [period],
                                refused),
        "/cw/regions/{code}": page("cw_region", "An area: its figures, risk types and the "
                                   "areas below it, with trends", html, code, area),
        "/cw/regions/{code}.csv": page("cw_region_csv", "The areas below one as CSV", csv,
                                       code, area),
        "/cw/regions/{code}/brief": page("cw_region_brief", "The printable monthly brief of "
                                         "a county, prefecture or province", html, code, area),
    }
    # fmt: on
