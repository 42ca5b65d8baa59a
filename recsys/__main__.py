"""``python -m recsys`` runs the CLI."""
from recsys.cli import main

main()
