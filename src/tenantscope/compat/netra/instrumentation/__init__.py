"""Mirrors ``netra.instrumentation``: ``instruments.InstrumentSet``."""
