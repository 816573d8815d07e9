"""A loaded rules file (RuleSet): its rules, version and content hash, and the rules in force."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from riskml import config
from riskml.data.periods import parse_date_month
from riskml.policy.rules.model import Rule
from riskml.policy.rules.parse import RulesFileError, parse_text

__all__ = ["RuleSet", "default_ruleset"]


@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, with the file's version and a hash of its content."""

    rules: tuple[Rule, ...]
    file_version: str
    content_hash: str
    source: str = "<rules>"

    @property
    def version(self) -> str:
        """``<file version>+<first 8 hex of the content's SHA-256>``: which rules a decision used."""
        return f"{self.file_version}+{self.content_hash[:8]}"

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def get(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    @classmethod
    def load(cls, path: str | Path | None = None) -> RuleSet:
        p = Path(path) if path is not None else config.POLICY_RULES
        if not p.exists():
            raise RulesFileError("file not found", source=str(p))
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise RulesFileError(f"not UTF-8 text: {exc}", source=str(p)) from None
        return cls.from_text(text, source=str(p))

    @classmethod
    def from_text(cls, text: str, source: str = "<rules>") -> RuleSet:
        version, rules = parse_text(text, source)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(tuple(rules), version, digest, source)

    def active(self, province_code: str, on_date: Any) -> list[Rule]:
        """The rules in force for a province on a date, with its overrides applied.

        ``province_code`` is two digits (a six-digit county code is accepted);
        ``on_date`` is ``YYYY-MM``, ``YYYY-MM-DD`` or a date; only the month counts.
        Overrides apply in file order, each merged with the national default;
        where several set the same thing, the later one wins.
        """
        prov = str(province_code)[:2]
        month = parse_date_month(on_date)
        out: list[Rule] = []
        for r in self.rules:
            if not r.in_force(month):
                continue
            enabled = r.enabled
            cond, only_if = r.condition, r.only_if
            applied: list[str] = []
            for ov in r.overrides:
                if not ov.applies(prov, month):
                    continue
                applied.append(ov.describe())
                if ov.enabled is not None:
                    enabled = ov.enabled
                if not ov.changes_threshold():
                    continue
                if ov.target is None:
                    cond = ov.merge(r.condition)
                elif only_if is not None:
                    base = {c.name: c for c in r.only_if.leaves()}[ov.target]  # type: ignore[union-attr]
                    merged = ov.merge(base)
                    only_if = only_if.map_leaves(
                        lambda c, t=ov.target, m=merged: m if c.name == t else c
                    )
            if enabled:
                out.append(
                    replace(
                        r, condition=cond, only_if=only_if, overrides=(), applied=tuple(applied)
                    )
                )
        return out


_DEFAULT_RULESET: RuleSet | None = None


def default_ruleset() -> RuleSet:
    """The project's rules file, loaded once per process."""
    global _DEFAULT_RULESET
    if _DEFAULT_RULESET is None:
        _DEFAULT_RULESET = RuleSet.load()
    return _DEFAULT_RULESET
