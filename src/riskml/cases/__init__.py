"""The case loop (监测帮扶): from a lead to a confirmed monitoring object, support, risk elimination
and back.

- ``machine``: statuses, actions, roles, fields, clocks (pure);
- ``procedure``: the deadlines, capacity and elimination criteria from configuration;
- ``store``: insert-only case events in the decision ledger's database;
- ``elimination``: the elimination criteria with their evidence, from the decision history;
- ``support``: measures suggested from the risk types and the household's situation;
- ``worklist``: capacity-aware worklists and expected falls per village;
- ``notice``: the redacted public-notice text;
- ``outcomes``: labelled outcomes from the loop;
- ``year``: a year of the loop, simulated.
"""
