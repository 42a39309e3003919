"""The SDK publishes typed events with Avro + registry; a plain consumer reads them back."""

from __future__ import annotations

import pytest

from connectors.errors import DeliveryFailedError, EventValidationError, PublisherClosedError
from revstream.sdk import Delivery, Publisher
from schemas.models import Customer, InvoicePosted, UsageRecorded
from streams.settings import Settings
from streams.stack import free_port
from streams.topics import TopicCatalog
from tests.integration.producers.helpers import kcat_read, read_back, usage
from tests.unit.schemas.strategies import sample


def test_events_and_master_data_read_back_with_a_plain_consumer(
    stack_settings: Settings, catalog: TopicCatalog
) -> None:
    invoice = sample(InvoicePosted, customer_id="CUST-2", event_id="inv-evt-1")
    customer = sample(Customer, customer_id="CUST-2")
    reports: list[Delivery | None] = []
    with Publisher(stack_settings, catalog=catalog, on_delivery=lambda d, e: reports.append(d)) as publisher:
        futures = [publisher.publish(usage(f"u-{i}", quantity=i)) for i in range(5)]
        futures.append(publisher.publish(invoice))
        master = publisher.publish_master(customer)
        deliveries = [future.result(timeout=30) for future in futures]
        assert master.result(timeout=30).topic == catalog.master_topic("customer")
    assert len(reports) == 7
    assert deliveries[-1].topic == catalog.event_topic("invoice_posted")

    usage_topic, invoice_topic = catalog.event_topic("usage_recorded"), catalog.event_topic("invoice_posted")
    records = read_back(stack_settings, [usage_topic, invoice_topic], lambda got: len(got) >= 6)
    by_id = {r.value["event_id"]: r for r in records if r.value}
    assert set(by_id) == {*(f"u-{i}" for i in range(5)), "inv-evt-1"}
    read_invoice = by_id["inv-evt-1"]
    assert InvoicePosted.from_avro(read_invoice.value or {}) == invoice
    assert read_invoice.key == "CUST-2"
    assert read_invoice.headers["event_type"] == b"invoice_posted"
    assert read_invoice.headers["source"] == invoice.source.encode()
    assert read_invoice.headers["correlation_id"] == invoice.correlation_id.encode()
    schema_id = int.from_bytes((read_invoice.raw or b"")[1:5], "big")
    assert (
        read_invoice.headers["schema_id"] == str(schema_id).encode() == str(deliveries[-1].schema_id).encode()
    )
    assert UsageRecorded.from_avro(by_id["u-3"].value or {}) == usage("u-3", quantity=3)
    # One key, one partition, in publish order.
    usage_read = [r for r in records if r.topic == usage_topic]
    assert len({r.partition for r in usage_read}) == 1
    assert [r.value["quantity"] for r in usage_read if r.value] == [0, 1, 2, 3, 4]

    masters = read_back(stack_settings, [catalog.master_topic("customer")], lambda got: len(got) >= 1)
    assert masters[0].key == "CUST-2"
    assert Customer.from_avro(masters[0].value or {}) == customer


def test_kcat_reads_what_the_sdk_wrote(stack_settings: Settings, catalog: TopicCatalog) -> None:
    with Publisher(stack_settings, catalog=catalog) as publisher:
        publisher.publish(usage("for-kcat", customer_id="CUST-K"))
    listing = kcat_read(stack_settings.kafka.require_bootstrap(), catalog.event_topic("usage_recorded"), 1)
    if listing is None:
        pytest.skip("kcat missing, or its librdkafka cannot negotiate ApiVersions with the embedded broker")
    assert listing.startswith("CUST-K ")
    assert "event_type=usage_recorded" in listing


def test_invalid_event_raises_before_anything_is_sent(
    stack_settings: Settings, catalog: TopicCatalog
) -> None:
    broken = UsageRecorded.model_construct(**{**usage("bad").__dict__, "quantity": "lots"})
    with Publisher(stack_settings, catalog=catalog) as publisher:
        with pytest.raises(EventValidationError, match="UsageRecorded does not fit its schema"):
            publisher.publish(broken)
        with pytest.raises(EventValidationError, match="not master data"):
            publisher.publish_master(usage("x"))  # type: ignore[arg-type]
        publisher.publish(usage("sentinel"))
    records = read_back(
        stack_settings,
        [catalog.event_topic("usage_recorded")],
        lambda got: any(r.value and r.value["event_id"] == "sentinel" for r in got),
    )
    assert [r.value["event_id"] for r in records if r.value] == ["sentinel"]
    with pytest.raises(PublisherClosedError):
        publisher.publish(usage("late"))


def test_backpressure_bounds_records_in_flight(stack_settings: Settings, catalog: TopicCatalog) -> None:
    peak = 0
    with Publisher(stack_settings, catalog=catalog, max_in_flight=8) as publisher:
        for i in range(300):
            publisher.send(usage(f"bp-{i}", customer_id=f"C-{i % 7}"))
            peak = max(peak, publisher.in_flight)
        publisher.flush()
        assert publisher.in_flight == 0
        assert publisher.delivered == 300
    assert 1 <= peak <= 8
    records = read_back(stack_settings, [catalog.event_topic("usage_recorded")], lambda got: len(got) >= 300)
    assert len({r.value["event_id"] for r in records if r.value}) == 300


def test_undeliverable_records_fail_their_futures_and_the_close(
    stack_settings: Settings, catalog: TopicCatalog
) -> None:
    nowhere = stack_settings.model_copy(
        update={
            "kafka": stack_settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
        }
    )
    publisher = Publisher(nowhere, catalog=catalog, delivery_timeout_ms=1500, fail_fast=True)
    future = publisher.publish(usage("lost"))
    with pytest.raises(DeliveryFailedError, match="was not delivered"):
        future.result(timeout=20)
    assert publisher.failed == 1
    assert publisher.broker_error is not None
    with pytest.raises(DeliveryFailedError, match="1 records were not delivered"):
        publisher.close()
