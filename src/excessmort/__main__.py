"""``python -m excessmort`` runs the command line."""

from excessmort.cli import main

raise SystemExit(main())
