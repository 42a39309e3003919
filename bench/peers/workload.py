"""The fixed reference workload every peer does per record, and how a peer reports its figures.

Per record: decode the Confluent-framed Avro with its writer schema from the registry (bytes that do
not decode are dead-lettered as ``CORRUPT_RECORD`` or ``UNKNOWN_SCHEMA_ID``); by ``event_id``, in the
framework's own state, drop an exact repeat (the same Avro body) and dead-letter a conflict (same
id, other content, ``DUPLICATE_ID_CONFLICT``); for the rest, keep a per-customer count and money sum
(the event's top-level ``*_minor`` amounts) and produce one Avro output carrying both.

This module runs inside the peers' own virtualenvs, which hold neither revstream nor its
dependencies: it imports only the standard library and fastavro (the same codec revstream uses), so
the stopwatch and the registry lookup here are small copies of ``bench.common``'s rather than imports.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import resource
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

import fastavro

__all__ = [
    "CONFLICT",
    "CORRUPT",
    "OUTPUT_SCHEMA",
    "UNKNOWN_SCHEMA",
    "Codec",
    "DecodeError",
    "Watch",
    "arguments",
    "fingerprint",
    "money",
]

CORRUPT: Final = "CORRUPT_RECORD"
UNKNOWN_SCHEMA: Final = "UNKNOWN_SCHEMA_ID"
CONFLICT: Final = "DUPLICATE_ID_CONFLICT"
MAGIC: Final = 0

OUTPUT_SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "PeerCustomerTotal",
    "namespace": "revstream.bench",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "customer_id", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "amount_minor", "type": "long"},
    ],
}


class DecodeError(Exception):
    """Raised when a record is not Confluent-framed Avro of a schema the registry knows."""

    def __init__(self, reason: str) -> None:
        """Keep the dead-letter reason."""
        super().__init__(reason)
        self.reason = reason


class Codec:
    """Decode canonical records (writer schema fetched once per id) and encode the output."""

    def __init__(self, registry_url: str, output_schema_id: int) -> None:
        """Parse the output schema once; writer schemas are fetched on first sight of their id."""
        self._registry = registry_url.rstrip("/")
        self._schemas: dict[int, Any] = {}
        self._unknown: set[int] = set()
        self._output = fastavro.parse_schema(OUTPUT_SCHEMA)
        self._header = struct.pack(">bI", MAGIC, output_schema_id)

    def decode(self, value: bytes | None) -> tuple[dict[str, Any], bytes]:
        """Return the record and its Avro body.

        Raises:
            DecodeError: with the dead-letter reason.
        """
        if value is None or len(value) < 5 or value[0] != MAGIC:
            raise DecodeError(CORRUPT)
        (schema_id,) = struct.unpack(">I", value[1:5])
        schema = self._schema(schema_id)
        body = value[5:]
        try:
            record = fastavro.schemaless_reader(io.BytesIO(body), schema, None)
        except Exception as exc:  # fastavro raises anything from EOFError to UnicodeDecodeError
            raise DecodeError(CORRUPT) from exc
        if not isinstance(record, dict):
            raise DecodeError(CORRUPT)
        return record, body

    def encode(self, event_id: str, customer_id: str, count: int, amount_minor: int) -> bytes:
        """Return the framed Avro output of one record."""
        out = io.BytesIO()
        out.write(self._header)
        output = {
            "event_id": event_id,
            "customer_id": customer_id,
            "count": count,
            "amount_minor": amount_minor,
        }
        fastavro.schemaless_writer(out, self._output, output)
        return out.getvalue()

    def _schema(self, schema_id: int) -> Any:
        schema = self._schemas.get(schema_id)
        if schema is not None:
            return schema
        if schema_id in self._unknown:
            raise DecodeError(UNKNOWN_SCHEMA)
        url = f"{self._registry}/schemas/ids/{schema_id}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                text = json.loads(response.read())["schema"]
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            self._unknown.add(schema_id)
            raise DecodeError(UNKNOWN_SCHEMA) from exc
        schema = fastavro.parse_schema(json.loads(text))
        self._schemas[schema_id] = schema
        return schema


def arguments(description: str) -> argparse.ArgumentParser:
    """The command line every peer takes from the harness: where to read, write and register."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--output", required=True)
    parser.add_argument("--deadletter", required=True)
    parser.add_argument("--output-schema-id", type=int, required=True)
    parser.add_argument("--n", type=int, required=True, help="input records the harness published")
    return parser


def fingerprint(body: bytes) -> str:
    """What decides an exact repeat (same digest) from a conflict (same id, other digest)."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def money(record: dict[str, Any]) -> int:
    """The event's money: the sum of its top-level ``*_minor`` amounts (0 when it has none)."""
    return sum(v for k, v in record.items() if k.endswith("_minor") and isinstance(v, int))


class Watch:
    """Wall and CPU time of this process (all its threads) from the first record on."""

    def __init__(self) -> None:
        """Unstarted until the first record."""
        self.started = False
        self.wall = 0.0
        self.cpu = 0.0

    def start(self) -> None:
        """Mark the first record (once)."""
        if not self.started:
            self.started = True
            self.wall = time.perf_counter()
            self.cpu = time.process_time()

    def report(self, records: int, **extra: Any) -> None:
        """Print the one JSON line the harness reads: records, seconds, CPU seconds, peak RSS."""
        line = {
            "records": records,
            "seconds": time.perf_counter() - self.wall,
            "cpu_seconds": time.process_time() - self.cpu,
            "peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
            **extra,
        }
        print(json.dumps(line), flush=True)


def _peak_rss_kb() -> int:
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark over fork + exec.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
