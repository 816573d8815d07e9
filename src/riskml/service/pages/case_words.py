"""The case pages' words in Chinese and English: statuses, steps, actions, fields, and field problems.

Every user-facing string of ``/cw/cases`` is here as a (Chinese, English) pair, as in
``words.py``. A refused action's problems come from the case loop in English, naming the
field; the pages show, next to that field, the field's Chinese hint first and the English
detail after it (``problem_text``).
"""

from __future__ import annotations

from riskml.service.pages.words import LANGS, words

CASE_WORDS: dict[str, tuple[str, str]] = {
    "cases": ("个案工作台", "Cases"),
    "cases_intro": (
        "先列按期限到期的走访（逾期在前），再按预期收益（校准后的返贫风险）列出新线索；"
        "按本周走访能力截断。",
        "Visits due by deadline come first (overdue first), then new leads by expected benefit "
        "(the calibrated risk of falling below the line); cut at this week's visit capacity.",
    ),
    "to_cases": ("个案工作台", "Cases"),
    "to_worklist": ("走访名单", "Worklist"),
    "fits": ("本周可完成", "What fits this week"),
    "fits_note": (
        "本周走访能力 {capacity} 户（每名网格员每周 {weekly} 户）。",
        "This week's capacity: {capacity} visits ({weekly} per caseworker a week).",
    ),
    "more": ("另有 {n} 户超出本周能力", "{n} more beyond this week's capacity"),
    "beyond_by_village": ("各村超出网格员能力的线索", "Leads beyond each village's caseworker"),
    "steps": ("待办审核与其他步骤", "Reviews and other steps"),
    "no_steps": ("暂无待办步骤。", "No step waits for you."),
    "no_items": ("本周没有待走访的农户。", "No visit to make this week."),
    "counts": (
        "在办个案 {open} 件（已纳入监测 {monitored} 件）；逾期 {overdue} 件，即将到期 {due_soon} 件；"
        "尚未立案的预警 {warnings} 户",
        "{open} open cases ({monitored} monitored); {overdue} overdue, {due_soon} due soon; "
        "{warnings} warnings without a case",
    ),
    "expected": ("明年预计返贫（致贫）户数", "Expected to fall below the line next year"),
    "expected_note": (
        "每村为各户校准风险之和，括号内为 90% 区间（假定各户独立；全县性灾害会使区间更宽）。",
        "Per village, the sum of the households' calibrated risks, with the 90% interval "
        "(assuming households are independent: a county-wide shock makes it wider).",
    ),
    "reports": ("社会报告（未匹配到农户）", "Social reports not matched to a household"),
    "reports_note": (
        "社会组织、企业和志愿者报告的风险，系统未能对应到已知农户：请入户核实，确认后登记线索。",
        "Risks reported by social organisations, enterprises and volunteers that riskml could "
        "not match to a known household: visit, and record a lead once you know the household.",
    ),
    "no_reports": ("暂无未匹配的社会报告。", "No unmatched social reports."),
    "observed": ("发现日期", "seen on"),
    "expected_row": ("{v}：约 {e} 户（{lo}–{hi}），共 {n} 户", "{v}: about {e} ({lo}–{hi}) of {n}"),
    "overdue": ("已逾期", "overdue"),
    "due_soon": ("即将到期", "due soon"),
    "on_time": ("未到期", "on time"),
    "kind_due": ("到期走访", "visit due"),
    "kind_lead": ("新线索", "new lead"),
    "kind_step": ("待办", "step"),
    "due": ("期限", "Due"),
    "not_before": ("最早", "not before"),
    "status": ("当前状态", "Status"),
    "next_step": ("下一步", "Next step"),
    "no_next": ("个案已结束。", "The case is closed."),
    "case": ("个案", "Case"),
    "case_of": ("农户 {h} 的个案", "Case of household {h}"),
    "no_case": ("该户尚无个案。", "This household has no case yet."),
    "history": ("办理记录", "History"),
    "when": ("时间", "When"),
    "who": ("办理人", "By"),
    "what": ("事项", "Action"),
    "after": ("办理后状态", "Status after"),
    "forms": ("现在可办理", "What you can do now"),
    "no_forms": (
        "当前状态下您的角色没有可办理的事项。",
        "Your role has nothing to do on this case now.",
    ),
    "done": ("已保存：{a}", "Saved: {a}"),
    "refused": ("未保存，请修改标出的内容：", "Not saved. Correct what is marked:"),
    "household_page": ("研判详情", "Decision details"),
    "risk_types": ("风险类型", "Risk types"),
    "risk_types_hint": ("可多选，最多 {n} 项", "choose up to {n}"),
    "proposed_types": ("拟定风险类型", "Proposed risk types"),
    "household_type": ("监测对象类型", "Household type"),
    "assignee": ("责任网格员", "Caseworker"),
    "fast_track": ("快速通道（灾害、意外：先帮扶后走程序）", "Fast track (disaster, accident)"),
    "note": ("备注（不要填写身份证、电话、银行卡信息）", "Note (no ID, phone or bank details)"),
    "submit": ("提交", "Submit"),
    "approve": ("同意", "Approve"),
    "reject": ("不同意", "Reject"),
    "confirm": ("认定为监测对象", "Confirm as monitored"),
    "reject_case": ("不予认定", "Reject"),
    "reject_note": ("不予认定须填写理由（备注）", "A rejection needs a note"),
    "source": ("线索来源", "Source"),
    "visit_members": ("家庭情况", "The household"),
    "household_size": ("共同生活人数", "Members living together"),
    "labor_count": ("有劳动能力人数", "Able to work"),
    "income": ("近 12 个月收入（元）", "Income over the last 12 months (yuan)"),
    "income_wage": ("工资性收入", "Wages"),
    "income_business": ("经营性收入", "Business"),
    "income_property": ("财产性收入", "Property"),
    "income_transfer": ("转移性收入", "Transfers"),
    "costs": ("刚性支出（元）", "Rigid costs (yuan)"),
    "medical_expense": ("合规医疗自付费用", "Compliant out-of-pocket medical"),
    "education_expense": ("教育支出", "Schooling costs"),
    "guarantees": ("“三保障”和饮水安全", "Three guarantees and water"),
    "medical_insured": ("全员参加基本医保", "Everyone medically insured"),
    "housing_safe": ("住房安全", "Safe housing"),
    "water_safe": ("饮水安全", "Safe drinking water"),
    "dropout": ("有义务教育阶段辍学", "A child out of school"),
    "coping_capacity": ("自我发展和抗风险能力", "Capacity to cope"),
    "cope_none": ("无", "none"),
    "cope_weak": ("弱", "weak"),
    "cope_some": ("一般", "some"),
    "cope_strong": ("较强", "strong"),
    "consent": (
        "农户已签字同意入户核实和信息查询",
        "The household signed its consent to the visit and the checks",
    ),
    "outcome": ("核实结论", "Outcome"),
    "out_propose": ("建议纳入监测", "propose as monitored"),
    "out_drop": ("未发现风险，不纳入", "no risk found: drop"),
    "out_fast_track": ("快速通道（先帮扶）", "fast track (support now)"),
    "visit_period": ("走访月份", "Month of the visit"),
    "prefilled": (
        "已按最近一次记录预填，请按实际情况修改；留空的项沿用原记录。",
        "Filled in from the latest record: correct what changed; empty fields keep it.",
    ),
    "caseworker_id": ("网格员（密钥编号）", "Caseworker (key id)"),
    "check_result": ("比对结果", "Result"),
    "consistent": ("数据一致", "consistent"),
    "inconsistent": ("数据不一致", "inconsistent"),
    "notice_text": ("公示内容（已去除身份证、电话、银行和健康信息）", "The notice (redacted)"),
    "notice_start": ("公示开始日期（默认今天）", "First day of the notice (default today)"),
    "plan_intro": (
        "已按风险类型和家庭情况预填建议措施，可修改；每个风险类型至少一项。清空“措施”即删除该行。",
        "Suggested from the risk types and the household: edit freely; at least one measure per "
        "risk type. Empty the measure to drop a row.",
    ),
    "measure": ("措施", "Measure"),
    "department": ("责任部门", "Department"),
    "start": ("开始", "Start"),
    "end": ("结束", "End"),
    "plan_now": ("当前帮扶计划", "The plan"),
    "no_plan": ("尚无帮扶计划。", "No plan yet."),
    "delivered": ("已落实", "Delivered"),
    "delivered_on": ("落实日期", "Delivered on"),
    "amount": ("金额（元，可不填）", "Amount (yuan, optional)"),
    "which_measure": ("哪项措施", "Which measure"),
    "criteria": ("风险消除条件", "Elimination criteria"),
    "met": ("已满足", "met"),
    "not_met": ("未满足", "not met"),
    "all_met": ("全部条件已满足，可提出风险消除。", "Every criterion is met."),
    "not_all_met": (
        "尚有条件未满足，提出后将被退回。",
        "Some criteria are not met: a proposal will be refused.",
    ),
    "rollback_reason": ("返贫风险再现的原因", "Why the risk is back"),
    "forbidden_case": (
        "此户不在您的密钥权限范围内，或没有记录。",
        "This household is outside your key's scope, or unknown.",
    ),
    "bad_form": ("表单无效，请从页面重新提交。", "The form is not valid: submit it from the page."),
    "no_model": ("评分模型未就绪，暂不能保存走访。", "No model loaded: the visit cannot be saved."),
}

STATUS: dict[str, tuple[str, str]] = {
    "lead": ("线索待分派", "lead"),
    "assigned": ("已分派待核实", "assigned"),
    "visited": ("已入户核实", "visited"),
    "checked": ("已数据比对", "cross-checked"),
    "noticed": ("公示中", "on public notice"),
    "township_approved": ("乡镇审核通过", "township approved"),
    "monitored": ("监测帮扶中", "monitored"),
    "elimination_proposed": ("已提出风险消除", "elimination proposed"),
    "elimination_township_approved": ("风险消除乡镇审核通过", "elimination township-approved"),
    "eliminated": ("风险已消除", "risk eliminated"),
    "rejected": ("不予认定", "rejected"),
    "dropped": ("核实无风险", "dropped"),
}
ACTION: dict[str, tuple[str, str]] = {
    "lead": ("登记线索", "Record a lead"),
    "assign": ("分派网格员", "Assign"),
    "visit": ("入户核实", "Home visit"),
    "cross_check": ("县级数据比对", "Data cross-check"),
    "notice": ("村级评议并公示", "Public notice"),
    "township_review": ("乡镇审核", "Township review"),
    "decide": ("县级认定", "County decision"),
    "plan": ("帮扶计划", "Support plan"),
    "deliver": ("落实帮扶", "Delivery"),
    "follow_up": ("回访", "Follow-up visit"),
    "propose_elimination": ("提出风险消除", "Propose elimination"),
    "elimination_review": ("风险消除乡镇审核", "Elimination: township review"),
    "elimination_decide": ("风险消除县级审定", "Elimination: county decision"),
    "rollback": ("风险回退", "Rollback"),
}
SOURCES: dict[str, tuple[str, str]] = {
    "warning": ("监测预警", "warning"),
    "self_report": ("农户自主申报", "household's own report"),
    "cadre_visit": ("干部走访排查", "cadre's visit"),
    "department_alert": ("部门预警", "department alert"),
    "social_report": ("社会反映", "social report"),
    "asset_idle": ("帮扶资产闲置", "assistance asset idle"),
}
HOUSEHOLD_TYPES: dict[str, tuple[str, str]] = {
    "unstable_alleviated": ("脱贫不稳定户", "unstable alleviated"),
    "marginal": ("边缘易致贫户", "marginal"),
    "sudden_hardship": ("突发严重困难户", "sudden severe hardship"),
}
CRITERIA: dict[str, tuple[str, str]] = {
    "labour": ("有劳动能力", "someone can work"),
    "income_above_line": ("收入稳定高于监测线", "income above the line"),
    "rigid_costs": ("刚性支出已解决", "rigid costs resolved"),
    "guarantees": ("“三保障”和饮水安全", "three guarantees and water"),
    "monitored": ("监测时间", "time monitored"),
    "measures": ("帮扶措施已落实", "measures delivered"),
}
KINDS: dict[str, tuple[str, str]] = {
    "jobs": ("就业增收", "jobs and income"),
    "safety_net": ("兜底保障", "safety net"),
    "service": ("服务保障", "service"),
}
# a field's hint shown first (Chinese) beside the case loop's own words for the problem
FIELD_HINTS: dict[str, tuple[str, str]] = {
    "consent": ("须经农户签字同意后才能入户核实", "the household's signed consent is needed"),
    "outcome": ("请选择核实结论", "choose an outcome"),
    "coping_capacity": ("请选择抗风险能力", "choose the capacity to cope"),
    "risk_types": ("请选择 1 至 5 个风险类型", "choose 1 to 5 risk types"),
    "household_type": ("请选择监测对象类型", "choose the household type"),
    "decision": ("此时不能办理该结论", "this decision cannot be taken now"),
    "note": ("请填写备注", "a note is needed"),
    "caseworker": ("请填写网格员的密钥编号", "the caseworker's key id"),
    "result": ("请选择比对结果", "choose a result"),
    "measures": ("每个风险类型至少一项措施", "at least one measure per risk type"),
    "measure": ("请选择计划中的措施", "choose a measure of the plan"),
    "delivered_on": ("请填写落实日期", "the date it was delivered"),
    "amount": ("金额须为 0 至 1000 万元", "an amount from 0 to 10,000,000"),
    "reason": ("请填写回退原因", "why the risk is back"),
    "start": ("日期格式为 年-月-日", "a date YYYY-MM-DD"),
    "end": ("日期格式为 年-月-日，且不早于开始", "a date not before the start"),
    "department": ("请填写责任部门", "the department"),
    "source": ("请选择线索来源", "choose a source"),
    "action": ("当前状态或角色不能办理此事项", "not allowed now or for this role"),
    "record": ("走访记录有误", "the visit's record"),
    "criteria": ("风险消除条件未满足", "an elimination criterion is not met"),
    "period": ("走访月份格式为 年-月", "the month YYYY-MM"),
}
RECORD_HINT = ("请检查填写的数值", "check the value")


def case_words(lang: str) -> dict[str, str]:
    """The pages' words and the case pages' words for a language."""
    i = LANGS.index(lang)
    return {**words(lang), **{k: v[i] for k, v in CASE_WORDS.items()}}


def pick(table: dict[str, tuple[str, str]], code: str | None, lang: str) -> str:
    """A label of one of the tables above (the code itself when unknown, "—" for none)."""
    if not code:
        return "—"
    pair = table.get(code)
    return pair[LANGS.index(lang)] if pair else code


def problem_text(field: str, problem: str, lang: str) -> str:
    """A problem as shown beside its field: the Chinese hint first, the loop's English detail after."""
    base = field.split(".")[-1].split("[")[0]
    if field.startswith("record."):
        hint = FIELD_HINTS.get(base, RECORD_HINT)
    elif field.startswith("criteria."):
        hint = FIELD_HINTS["criteria"]
    else:
        hint = FIELD_HINTS.get(base, RECORD_HINT)
    if lang == "zh":
        return f"{hint[0]}（{problem}）"
    return f"{hint[1]}: {problem}"
