"""``python -m revstream`` runs the CLI."""

from revstream.cli import main

main()
