"""Subcommands of the ``excessmort`` command line, one module each, discovered by :mod:`excessmort.cli`.

Each module defines ``register(subparsers)`` adding its parser with ``set_defaults(func=handler)``;
``handler(args) -> int`` returns the exit code (0 ok, 1 not ready / failed, 2 usage error).
"""
