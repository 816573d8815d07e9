"""Alembic's environment for the ledger's database: the connection (and its transaction) is the
caller's (``riskml.store.migrations.upgrade``), so the whole upgrade is one transaction."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
