"""The names every layer agrees on: canonical event types, master-data kinds, pipeline stages.

The ``.avsc`` files are the schema truth; these tuples name them so that topics, subjects,
producers and processors all derive from one list.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AVRO_NAMESPACE",
    "ERP_NAMESPACE",
    "EVENTS_NAMESPACE",
    "EVENT_TYPES",
    "MASTER_DATA_KINDS",
    "MASTER_NAMESPACE",
    "OPS_NAMESPACE",
    "STAGES",
]

AVRO_NAMESPACE: Final = "io.revstream"
# Every record lives under one of these: canonical events, master data, ERP commands, and the
# business-exception records of operations. Dead letters are no Avro record: they keep the original
# record's bytes and add headers (streams/deadletter.py).
EVENTS_NAMESPACE: Final = f"{AVRO_NAMESPACE}.events"
MASTER_NAMESPACE: Final = f"{AVRO_NAMESPACE}.master"
ERP_NAMESPACE: Final = f"{AVRO_NAMESPACE}.erp"
OPS_NAMESPACE: Final = f"{AVRO_NAMESPACE}.ops"

EVENT_TYPES: Final = (
    "quote_approved",
    "order_accepted",
    "service_activated",
    "usage_recorded",
    "invoice_posted",
    "payment_received",
    "payment_failed",
    "contract_renewed",
    "contract_amended",
    "revenue_schedule_adjusted",
    "discount_approved",
)

MASTER_DATA_KINDS: Final = ("customer", "product", "legal_entity")

# Processing stages, in pipeline order; each has its own dead-letter topic.
STAGES: Final = ("decode", "dedupe", "policy", "enrich", "reconcile", "recognise", "sink")
