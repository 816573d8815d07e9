"""Case-loop commands: ``riskml cases list | show | rebuild | worklist`` (and ``simulate-year``).

They read the case store in the ledger's database (``riskml.cases.store``); every action is
taken through the service's API (``POST /households/{id}/case/{action}``) or its pages, so
that it names an actor with a key. ``rebuild`` replays every event and checks each case's
stored state and each household's current-case row (``--repair`` rewrites those that differ).
"""

from __future__ import annotations

import json
from collections import Counter

import typer

from riskml.cli.app import app, fail

cases_app = typer.Typer(
    help="The case loop: leads, visits, confirmation, support, risk elimination.",
    no_args_is_help=True,
)
_LEDGER = typer.Option(
    None, "--ledger", help="the ledger's SQLAlchemy URL (default: the state folder's)"
)


def _store(ledger: str | None):
    from riskml.cases.procedure import ProcedureError
    from riskml.cases.store import CaseStore
    from riskml.store.ledger import Ledger, LedgerError

    try:
        return CaseStore(Ledger(ledger))
    except (LedgerError, ProcedureError) as exc:
        fail(str(exc))


@cases_app.command("list")
def list_cases(
    county: list[str] = typer.Option([], "--county", help="6-digit county code (repeatable)"),
    ledger: str | None = _LEDGER,
) -> None:
    """Current cases by status and deadline clock (counts; no household ids)."""
    from riskml.cases.machine import clock
    from riskml.store.entries import now_iso

    store = _store(ledger)
    states = store.current_cases(county_codes=county or None, summary=True)
    now = now_iso()
    counts = Counter((s["status"], clock(s, store.procedure, now) or "closed") for s in states)
    if not counts:
        typer.echo("no cases")
        return
    typer.echo(f"{'status':<32}{'clock':<10}{'cases':>8}")
    for (status, clk), n in sorted(counts.items()):
        typer.echo(f"{status:<32}{clk:<10}{n:>8}")
    typer.echo(f"{'total':<42}{sum(counts.values()):>8}")


@cases_app.command("show")
def show(household_id: str, ledger: str | None = _LEDGER) -> None:
    """A household's current case (JSON) and its events."""
    store = _store(ledger)
    state = store.current(household_id)
    if state is None:
        fail("no case for this household", 1)
    events = [
        {k: e[k] for k in ("seq", "created_at", "actor", "action", "status")}
        for e in store.events(state["case_id"])
    ]
    typer.echo(json.dumps({"case": state, "events": events}, ensure_ascii=False, indent=2))


@cases_app.command("rebuild")
def rebuild(
    ledger: str | None = _LEDGER,
    repair: bool = typer.Option(
        False, "--repair", help="rewrite the current-case rows that differ from the replay"
    ),
) -> None:
    """Replay every case event and check each case's stored state and each household's
    current-case row; exit 1 on a mismatch (a current row rewritten by --repair is not one)."""
    store = _store(ledger)
    r = store.rebuild(repair=repair)
    typer.echo(
        f"{r.events:,} event(s), {r.cases:,} case(s) of {r.households:,} household(s) "
        f"rebuilt in {r.seconds:.2f} s; {len(r.mismatched)} mismatch(es); "
        f"{r.current_mismatched:,} current-case row(s) differ, {r.current_repaired:,} rewritten"
    )
    if r.mismatched or r.current_mismatched > r.current_repaired:
        raise typer.Exit(1)


@cases_app.command("worklist")
def worklist_cmd(
    county: str = typer.Option(..., "--county", help="6-digit county code"),
    role: str = typer.Option("county", "--role", help="caseworker, township or county"),
    ledger: str | None = _LEDGER,
) -> None:
    """A county's capacity-aware worklist (counts; what fits this week and what is beyond)."""
    from riskml.cases import worklist
    from riskml.store.entries import now_iso
    from riskml.store.latest import latest_scores

    store = _store(ledger)
    decisions = latest_scores(store.ledger.engine, [county])
    cases = store.current_cases([county], statuses=list(worklist.LISTED_STATUSES), summary=True)
    wl = worklist.build(role, cases, decisions, store.procedure, now_iso())
    fits = Counter(i.kind for i in wl.fits)
    typer.echo(
        f"capacity {wl.capacity} visit(s) this week: {len(wl.fits)} fit "
        f"({fits.get('due', 0)} due, {fits.get('lead', 0)} new), {wl.beyond} beyond; "
        f"{wl.counts['overdue']} overdue, {wl.counts['due_soon']} due soon, "
        f"{wl.counts['open']} open case(s), {wl.counts['warnings']} warning(s) without a case"
    )
    total = sum(e.expected for e in wl.expected.values())
    typer.echo(
        f"expected to fall below the line next year: {total:.1f} household(s) in {len(wl.expected)} village(s)"
    )


app.add_typer(cases_app, name="cases")
