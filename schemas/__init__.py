"""Canonical Avro schemas of revstream, the pydantic models that mirror them, and their loader.

This layer is the contract between producers, processors and the ledger; it imports nothing else
of revstream.
"""
