"""Models built from decoded Avro records skip validation, yet accept and refuse what validation does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.loader import MODELS_BY_STEM, schema_for_model
from schemas.models import AvroRecord, Customer, InvoicePosted, OrderAccepted, ServiceActivated
from schemas.models.decoded import from_decoded
from streams.serde import AvroSerde
from streams.settings import RegistrySettings
from tests.unit.schemas.strategies import model_strategy, sample

MODELS: list[type[AvroRecord]] = list(MODELS_BY_STEM.values())
SERDE = AvroSerde.from_settings(RegistrySettings(url="mock://decoded-models"))


def decoded(record: AvroRecord) -> dict[str, Any]:
    data = SERDE.serialize("t", record)
    _, values = SERDE.decode(data, reader_schema=schema_for_model(type(record)))
    return values


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_decoded_record_builds_the_model_validation_builds(
    model: type[AvroRecord], data: st.DataObject
) -> None:
    record = decoded(data.draw(model_strategy(model)))
    built = from_decoded(model, record)
    validated = model.from_avro(record)
    assert built == validated
    assert type(built) is type(validated)
    assert built.model_dump() == validated.model_dump()


HOSTILE: list[tuple[type[AvroRecord], str, Any]] = [
    (OrderAccepted, "event_id", ""),
    (OrderAccepted, "customer_id", ""),
    (OrderAccepted, "currency", "eur"),
    (OrderAccepted, "currency", "EURO"),
    (OrderAccepted, "event_type", "invoice_posted"),
    (OrderAccepted, "schema_version", 2**31),
    (OrderAccepted, "billing_frequency", "hourly"),
    (OrderAccepted, "term_start", 12),
    (InvoicePosted, "total_minor", 2**63),
    (InvoicePosted, "total_minor", True),
    (ServiceActivated, "milestone_amount_minor", -(2**63) - 1),
    (ServiceActivated, "line_id", ""),
    (Customer, "currency", "usd"),
    (Customer, "customer_id", ""),
]


@pytest.mark.parametrize(("model", "field", "value"), HOSTILE, ids=lambda part: str(part)[:20])
def test_a_record_breaking_a_constraint_avro_cannot_express_is_refused(
    model: type[AvroRecord], field: str, value: Any
) -> None:
    record = decoded(sample(model))
    record[field] = value
    with pytest.raises(ValidationError) as from_decoded_error:
        from_decoded(model, record)
    with pytest.raises(ValidationError) as validation_error:
        model.from_avro(record)
    problems = [(error["loc"], error["msg"]) for error in from_decoded_error.value.errors()]
    assert problems == [(error["loc"], error["msg"]) for error in validation_error.value.errors()]


def test_a_nested_line_breaking_a_constraint_is_refused() -> None:
    record = decoded(sample(InvoicePosted))
    record["lines"][0]["line_id"] = ""
    with pytest.raises(ValidationError, match="line_id"):
        from_decoded(InvoicePosted, record)


def test_extra_and_missing_fields_are_refused() -> None:
    record = decoded(sample(OrderAccepted))
    with pytest.raises(ValidationError):
        from_decoded(OrderAccepted, {**record, "surprise": 1})
    del record["source"]
    with pytest.raises(ValidationError):
        from_decoded(OrderAccepted, record)
