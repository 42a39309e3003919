"""A Faust codec that reads and writes topic values with revstream's Avro serde.

Faust hands a codec only the value, never the topic, so one codec serves one topic: it names the
registry subject from that topic (``<topic>-value`` by default). Use it as a topic's
``value_serializer``::

    app.topic(name, value_serializer=AvroCodec(serde=serde, topic=name))

Decode failures surface as the serde's typed errors (Faust wraps them in its ``ValueDecodeError``
with the serde error as ``__cause__``); agents that must dead-letter undecodable records should read
raw bytes and call the serde themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.serializers.codecs import Codec

from streams.serde import AvroSerde

__all__ = ["AvroCodec"]

logger = logging.getLogger(__name__)


class AvroCodec(Codec):
    """Faust codec for one topic: models (or dicts with ``schema``) out, models (or dicts) in.

    Args:
        serde: the Avro serde holding the registry client and its caches.
        topic: the topic whose subject the codec registers and looks schemas up under.
        as_model: decode to the record's pydantic model (default) or to a plain record dict.
    """

    def __init__(
        self,
        children: tuple[Any, ...] | None = None,
        *,
        serde: AvroSerde,
        topic: str,
        as_model: bool = True,
        **kwargs: Any,
    ) -> None:
        # Faust clones codecs with ``type(self)(children=..., **self.kwargs)``: keep every
        # constructor argument in kwargs so chained codecs (``codec | other``) keep working.
        super().__init__(children=children, serde=serde, topic=topic, as_model=as_model, **kwargs)
        self.serde = serde
        self.topic = topic
        self.as_model = as_model

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, bytes | bytearray):
            # Already framed (e.g. a record forwarded unchanged): never wrap it twice.
            return bytes(obj)
        return self.serde.serialize(self.topic, obj)

    def _loads(self, s: bytes) -> Any:
        if self.as_model:
            return self.serde.decode_model(s, topic=self.topic)
        return self.serde.decode(s, topic=self.topic)[1]
