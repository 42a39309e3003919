"""The shipped Kafka Connect JDBC sink configuration stays consistent with the catalog and the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import connectors
from schemas.loader import schema_by_stem
from streams.topics import TopicCatalog

CONFIG = Path(connectors.__file__).parent / "kafka-connect" / "erp-jdbc-sink.json"
DEFAULT_CATALOG = TopicCatalog(namespace="revstream", partitions=6, replication_factor=3)


def _config() -> dict[str, str]:
    document = json.loads(CONFIG.read_text())
    assert set(document) == {"name", "config"}  # the Connect REST API's POST /connectors body
    config: dict[str, str] = document["config"]
    assert all(isinstance(value, str) for value in config.values())
    return config


def test_reads_the_command_topic_with_the_registry_and_dead_letters_to_the_sink_topic() -> None:
    config = _config()
    assert config["connector.class"] == "io.confluent.connect.jdbc.JdbcSinkConnector"
    assert config["topics"] == DEFAULT_CATALOG.commands_topic
    assert config["value.converter"] == "io.confluent.connect.avro.AvroConverter"
    assert config["value.converter.schema.registry.url"].startswith("http")
    assert config["errors.tolerance"] == "all"
    assert config["errors.deadletterqueue.topic.name"] == DEFAULT_CATALOG.deadletter_topic("sink")
    assert config["errors.deadletterqueue.context.headers.enable"] == "true"
    # Idempotent per command: a re-delivered command rewrites its own row.
    assert (config["insert.mode"], config["pk.mode"], config["pk.fields"]) == (
        "upsert",
        "record_value",
        "command_id",
    )


def _array_fields(schema: Any, path: str, delimiter: str) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict) and schema.get("type") == "record":
        for field in schema["fields"]:
            found |= _array_fields(
                field["type"], f"{path}{delimiter}{field['name']}".lstrip(delimiter), delimiter
            )
    elif isinstance(schema, dict) and schema.get("type") == "array":
        found.add(path)
    elif isinstance(schema, list):
        # Connect's AvroConverter turns a union of records into a struct with one field per branch,
        # named after the record; Flatten then prefixes it like any nested struct.
        for branch in schema:
            if isinstance(branch, dict) and branch.get("type") == "record":
                found |= _array_fields(branch, f"{path}{delimiter}{branch['name']}", delimiter)
    return found


def test_drops_exactly_the_array_fields_jdbc_cannot_store() -> None:
    config = _config()
    assert config["transforms"].split(",") == ["flatten", "dropArrays"]
    delimiter = config["transforms.flatten.delimiter"]
    arrays = _array_fields(dict(schema_by_stem("erp_command").definition), "", delimiter)
    assert arrays == {
        "payload_JournalEntry_lines",
        "payload_Invoice_lines",
        "payload_RevenueSchedule_entries",
    }
    assert set(config["transforms.dropArrays.exclude"].split(",")) == arrays
