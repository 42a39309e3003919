"""confluent-kafka ``Serializer`` / ``Deserializer`` adapters over :class:`streams.serde.AvroSerde`.

For ``SerializingProducer`` and ``DeserializingConsumer`` users (confluent's ``Serializer(obj, ctx)``
protocol): the adapters add nothing but the topic and key/value field from the context; encoding
and decoding are the serde's one path.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka.serialization import (
    Deserializer,
    MessageField,
    SerializationContext,
    Serializer,
)

from schemas.models import AvroRecord
from streams.errors import RecordEncodeError
from streams.serde import AvroSerde

__all__ = ["AvroModelDeserializer", "AvroModelSerializer"]

logger = logging.getLogger(__name__)


class AvroModelSerializer(Serializer):
    """confluent-kafka ``Serializer`` for ``SerializingProducer``: model in, framed Avro out."""

    def __init__(self, serde: AvroSerde) -> None:
        self._serde = serde

    def __call__(self, obj: Any, ctx: SerializationContext | None = None) -> bytes | None:
        """Encode ``obj`` (a model) for ``ctx.topic``; ``None`` stays ``None`` (a tombstone).

        Raises:
            SerdeError: when it cannot be encoded, or no context names the topic.
        """
        if obj is None:
            return None
        if ctx is None:
            raise RecordEncodeError("a SerializationContext is needed to name the subject")
        return self._serde.serialize(ctx.topic, obj, is_key=ctx.field == MessageField.KEY)


class AvroModelDeserializer(Deserializer):
    """confluent-kafka ``Deserializer`` for ``DeserializingConsumer``: framed Avro in, model out."""

    def __init__(self, serde: AvroSerde, model: type[AvroRecord] | None = None) -> None:
        self._serde = serde
        self._model = model

    def __call__(self, value: bytes | None, ctx: SerializationContext | None = None) -> AvroRecord | None:
        """Decode ``value`` into its model; ``None`` (a tombstone) stays ``None``.

        Raises:
            SerdeError: see :meth:`AvroSerde.decode_model`.
        """
        if value is None:
            return None
        return self._serde.decode_model(value, self._model, topic=ctx.topic if ctx else None)
