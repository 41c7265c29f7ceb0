"""Helpers shared by the tests (no tests here): presets, CLI runs, stores, the session."""
