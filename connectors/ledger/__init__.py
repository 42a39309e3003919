"""The PostgreSQL ERP ledger: versioned migrations, the batch writer the sink uses, and the reports.

- ``migrate``: ``migrations/NNNN_*.sql`` applied in order, recorded in ``schema_migrations``.
- ``commands``: decoded ERP commands as checked dicts (constraints derived from the models).
- ``rows``: pure mapping of ERP commands to ledger rows, and the newer-wins order per record kind.
- ``writer``: one transaction per batch with the consumed offsets; exactly once by command id.
- ``report``: trial balance, revenue by month, AR aging and open collections cases, from SQL.
"""
