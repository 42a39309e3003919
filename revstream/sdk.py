"""The Python SDK: ``from revstream.sdk import Publisher``.

from revstream.sdk import Publisher, load_settings
from schemas.models import UsageRecorded

with Publisher(load_settings().with_embedded_endpoints()) as publisher:
    publisher.publish(UsageRecorded(...))       # a Future of the broker's acknowledgement
    publisher.send(UsageRecorded(...))          # no future: the fastest path for bulk loads
# leaving the block flushes and raises DeliveryFailedError if any record was not delivered
"""

from __future__ import annotations

from connectors.errors import DeliveryFailedError, EventValidationError, FieldProblem
from connectors.producers.publisher import Delivery, DeliveryCallback, Publisher
from connectors.producers.validation import parse_event, parse_master
from streams.settings import Settings, load_settings

__all__ = [
    "Delivery",
    "DeliveryCallback",
    "DeliveryFailedError",
    "EventValidationError",
    "FieldProblem",
    "Publisher",
    "Settings",
    "load_settings",
    "parse_event",
    "parse_master",
]
