"""Policy rules: the mechanism's hard warning thresholds, as versioned configuration.

The rules stand beside the model and are never replaced by it. They live in a
YAML file (``riskml/policy/rules/default.yaml`` by default; the format is described in
``riskml/policy/rules/README.md``) that a policy officer can change without touching
code. The file is validated strictly on load: any mistake raises
:class:`RulesFileError` naming the rule and the key.

Each rule has one measured **condition** (a value compared with a threshold:
the value and threshold it reports and its messages show) and optional
**only_if** conditions that must also hold (``all``/``any`` lists). Thresholds
are numbers or a reference value times a factor (``threshold_ref:
dibao_line, factor: 1.5``), and may be overridden by province and date.

Missing is never zero. A condition whose inputs are missing is *unknown*;
conditions combine in three-valued logic (``all`` is false as soon as one
part is known false, ``any`` true as soon as one part is known true). A rule
whose outcome stays unknown does not fire and is listed as not evaluated.

Shares (``medical_share``, ``education_share``, ``loss_share``,
``rigid_share``) are spending divided by household net income. When net
income is zero or negative, any positive spending is above every share: the
share is +inf (it fires any ``gt``/``ge`` share rule), the messages show it as
"income ≤ 0" and the reported value is ``None``. Zero spending is a share of 0.

``income_drop`` is (previous net income − net income) / previous net income,
known only when both are known and the previous net income is positive.

Severity (for ranking, and the rules-only baseline): the sum over fired rules
of ``weight × (1 + excess)``, where ``weight`` is the rule's weight (default 3
for red, 1 for yellow) and ``excess`` is how far the value is past the
threshold relative to the threshold, ``|value − threshold| / |threshold|``,
capped to [0, 1] (flag conditions and ``eq`` have excess 0). A red rule thus
adds 3 to 6, a yellow rule 1 to 2; a household with nothing fired has 0.
"""

from riskml.policy.rules.evaluate import evaluate, evaluate_record, previous_frame, rules_baseline
from riskml.policy.rules.format import format_value
from riskml.policy.rules.model import (
    FLAG_OPS,
    LEVEL_WEIGHTS,
    LEVELS,
    NUMERIC_OPS,
    OPS,
    Condition,
    Group,
    Override,
    Rule,
)
from riskml.policy.rules.parse import MAX_SHARE_THRESHOLD, RulesFileError
from riskml.policy.rules.results import RuleResults
from riskml.policy.rules.ruleset import RuleSet, default_ruleset
from riskml.policy.rules.values import VALUES, Kind, ValueSpec

__all__ = [
    "FLAG_OPS",
    "LEVELS",
    "LEVEL_WEIGHTS",
    "MAX_SHARE_THRESHOLD",
    "NUMERIC_OPS",
    "OPS",
    "VALUES",
    "Condition",
    "Group",
    "Kind",
    "Override",
    "Rule",
    "RuleResults",
    "RuleSet",
    "RulesFileError",
    "ValueSpec",
    "default_ruleset",
    "evaluate",
    "evaluate_record",
    "format_value",
    "previous_frame",
    "rules_baseline",
]
