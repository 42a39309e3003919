"""The stream platform every part shares: settings, clients, topic catalog and provisioning, the
embedded stack, Avro serde with the registry, dead-letter routing, true log-end offsets and
consumer-lag monitoring (``streams.lag``)."""
