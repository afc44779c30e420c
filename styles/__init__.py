"""Textual CSS for the tunedeck app (data files only; shipped in the wheel)."""
