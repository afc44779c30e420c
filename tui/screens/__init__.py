"""tunedeck TUI screens."""
