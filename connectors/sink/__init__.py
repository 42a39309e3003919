"""The ERP sink: ERP commands from Kafka into the PostgreSQL ledger, exactly once.

- ``sink``: the consumer loop (batches, one transaction per batch with its offsets, back-off,
  dead letters, graceful shutdown).
- ``decode``: records to checked ``ErpCommand`` dicts; undecodable records become dead-letter failures.
- ``batch`` and ``backoff``: pure bookkeeping (offsets to store, rebalance filtering, delays).
- ``metrics``: the sink's Prometheus metrics on a registry of its own.
"""
