"""Typed queries over the EventStore. Every query takes a Scope."""
