"""Bundled sample datasets (data files only; shipped in the wheel so the app finds them)."""
