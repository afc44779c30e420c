"""tunedeck's terminal UI and command line. Imports engine; never imports torch."""
