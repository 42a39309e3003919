"""Consumer-lag monitoring: committed offsets against true log ends, lag in records and seconds,
Burrow-style statuses, exported under kafka-lag-exporter's metric names (``revstream lag``)."""
