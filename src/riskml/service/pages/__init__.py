"""Caseworker pages: login, the village worklist and the household explanation, served under ``/cw``.

Village cadres, work-team members and township staff use these pages to decide
whom to visit this week and what help to bring. Chinese is the default
(``?lang=en`` or the language cookie switches to English); pages are plain
HTML with one stylesheet, readable on a phone, and charts are inline SVG drawn
here on the server (no JavaScript libraries, nothing from a CDN).

Security and privacy:

- Login takes a caseworker, township, county (or admin) API key once; the session is a signed,
  HttpOnly, SameSite=Strict cookie holding the key's *id*, a mark of its hash, a
  random session id and when it was issued, never the key. Every request looks
  the id up in the keys in force again and checks scope on the server
  (``Principal.can_read`` and ``scope_filter``), so a key removed, re-issued
  (same id, new hash) or failing (an invalid keys file) ends its sessions.
  Logout ends the session on the server (the ledger's access log), so a
  replayed cookie is refused.
- The login form is read with small limits (4 KB, a plain form of at most 5
  fields, no files, within 5 s; at most 8 logins reading at once), and failed
  logins are limited per client address and per key id (5 a minute, then 429
  with ``Retry-After``), each written to the ``riskml.access`` log without the key.
- URLs carry nothing about a household but its pseudonymous id; every answer
  is ``Cache-Control: no-store``; every worklist view, export and household
  view is written to the ledger's access log (who, what, when, scope).

The pages show what the ledger stored with each decision (score, level, fired
rules with their messages, reason sentences, measures, contributions), so a
page shows the decision as it was made, whatever model is serving now.
Templates and static files are package data (``templates/``, ``static/`` beside
these modules; ``RISKML_PAGES_DIR`` names another folder holding both); they
only present what the view functions prepare.

Modules: ``words`` (the zh/en vocabulary and labels), ``formatting`` (values as
shown), ``session`` (session cookies, ended sessions, the login's limits),
``charts`` (SVG geometry), ``views`` (what each page shows), ``routes`` (the
``/cw`` router); the case loop's pages: ``case_pages`` (``/cw/cases``), ``case_forms``
(forms to the API's JSON) and ``case_words``.
"""

from riskml.service.pages.case_pages import router as case_router
from riskml.service.pages.charts import score_chart, waterfall
from riskml.service.pages.routes import LANG_COOKIE, router
from riskml.service.pages.session import (
    SESSION_COOKIE,
    SESSION_TTL_S,
    Session,
    b64,
    read_session,
    sign_session,
)
from riskml.service.pages.words import MONITORING_TYPE_EN

__all__ = [
    "case_router",
    "LANG_COOKIE",
    "MONITORING_TYPE_EN",
    "SESSION_COOKIE",
    "SESSION_TTL_S",
    "Session",
    "b64",
    "read_session",
    "router",
    "score_chart",
    "sign_session",
    "waterfall",
]
