"""The outputs' producer: a failed delivery surfaces and stops further output."""

from __future__ import annotations

import asyncio

import pytest

from processors.engine.outputs import OutputProducer
from processors.errors import OutputDeliveryError
from streams.settings import KafkaSettings
from tests.unit.processors.engine.fakes import FakeProducer


def test_a_failed_delivery_surfaces_and_stops_further_output():
    producer = FakeProducer(fail_topics=frozenset({"ns.erp.commands"}))
    outputs = OutputProducer(KafkaSettings(), producer=producer)
    producer.on_delivery = outputs.on_delivery
    outputs.produce("ns.erp.commands", b"C1", b"value")
    with pytest.raises(OutputDeliveryError, match="not enough replicas"):
        asyncio.run(outputs.delivered())
    with pytest.raises(OutputDeliveryError):
        outputs.produce("ns.erp.commands", b"C1", b"again")
