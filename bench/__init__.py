"""Benchmarks of revstream against raw confluent-kafka + fastavro on the same machine."""
