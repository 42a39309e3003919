"""The schema registry service: Confluent Schema Registry's REST API over a PostgreSQL store.

``server`` is the FastAPI app (``revstream registry serve``), ``service`` holds the rules
(versions, ids, modes, soft and permanent deletes), ``compat`` the compatibility levels composed
on Apache Avro's reader/writer checker, ``schema`` parsing and canonical form, ``store`` the SQL.
"""
