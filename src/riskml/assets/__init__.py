"""Assistance assets (帮扶资产): the register, its lifecycle events, rules and the learned warning."""
