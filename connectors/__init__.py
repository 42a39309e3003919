"""What moves data in and out of the streams: producers (SDK, file/CLI publisher, HTTP gateway)
and the PostgreSQL ERP ledger sink."""
