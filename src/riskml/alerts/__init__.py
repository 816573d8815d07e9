"""Department screening alerts (部门筛查预警): contract, triggers and the merge onto the record.

- ``riskml.alerts.fields``: the departments, their fields and each field's mapping onto
  the household record (the vocabulary).
- ``riskml.alerts.contract``: alert ids and months, ``alert_problems`` (as strict as the
  record validator), alert files (``read_alert_file``), ``alerts_frame`` and the
  documentation (``contract_markdown``, docs/alerts.md).
- ``riskml.alerts.triggers``: the department thresholds as a versioned rules file
  (``triggers.yaml``; ``TriggerSet.load().fired(...)``).
- ``riskml.alerts.merge``: ``merge`` (one household and month), ``group_alerts`` and the
  batch ``merge_frame``.

This package sits between ``riskml.cases`` and ``riskml.monitoring``: it may import cases,
scoring, training, store, model, policy and data; never monitoring, service or cli.
"""
