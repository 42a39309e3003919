"""revstream: a Kafka stream-processing pipeline for SaaS quote-to-cash."""

__version__ = "0.1.0"
