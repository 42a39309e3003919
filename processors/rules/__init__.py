"""Pure business rules of the processors: plain functions over the models, no Kafka, no I/O.

- ``money``: exact largest-remainder splits and the daily-ratable monthly spread.
- ``ids``: deterministic ids (UUIDv5) for commands, entries, schedules and exceptions.
- ``dedupe``: payload fingerprints and the new / duplicate / conflict / expired decision.
- ``enrich``: the master-data view, what master data an event still lacks, newer-wins.
- ``policy``: business exceptions for data that is valid Avro but breaks a rule.
- ``reconcile``: usage-to-billing reconciliation per (subscription, metric, billing period).
- ``recognition``: the accounting rules (journal entries, revenue schedules, re-spreads).
- ``commands``: ERP commands for invoices, services milestones, payments and collections.
- ``contracts``: ERP commands of the contract lifecycle: subscriptions, amendments, re-spreads.
"""
