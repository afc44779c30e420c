"""tunedeck TUI widgets."""
