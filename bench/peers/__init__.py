"""The peers ``make bench`` runs beside revstream: a Quix Streams app and a Bytewax dataflow."""
