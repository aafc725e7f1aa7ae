"""``python -m excessmort`` runs the command line."""

from excessmort.cli import entry

entry()
