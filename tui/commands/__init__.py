"""CLI subcommands: each module has `register(subparsers)` and handlers returning exit codes."""
