"""The Faust app, its agents and the pure business rules they call (dedupe, policy, enrichment,
reconciliation, revenue recognition, ERP command building)."""
