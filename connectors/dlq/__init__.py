"""``revstream dlq``: list, show, replay (optionally patched and followed) and purge dead letters."""
