"""tunedeck TUI dialogs."""
