"""Ingest: OTLP decode, native events, normalisation, attribution, batching writer."""
