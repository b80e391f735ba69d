"""Narrow tables that say where the records with a given trace or response id are.

Trace and response ids are random, and ``records`` is in time order, so finding the
records with one of a batch's ids means reading the id column of every record in the
look-up window: per write batch that grew with the data (the writer looks for the
batch's traces within hours, for copies of its responses within a day). An index row is
(hash of the id, first and last start time of its records in one write batch): a 24-byte
row per trace or response instead of a text column per record. A look-up first finds
which ids have index rows overlapping the window (almost always none: a new trace's spans
arrive together), then reads ``records`` for those ids only, within their own time range.

The rows stay in the order they were written (about time order), so zone maps on
``first``/``last`` skip everything outside a window; a look-up by id without a time (a
trace pasted from a log) reads the hash column whole, a few ms at 10M records. Rows are
never rewritten: a replaced record keeps its trace, response and start time. A hash may
collide: the look-up then reads records that turn out to have another id, never misses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LookupIndex:
    table: str
    column: str  # the record column indexed
    where: str  # which records have a row

    @property
    def create(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} (h UBIGINT, first TIMESTAMP, last TIMESTAMP)"
        )

    def rows_of(self, source: str) -> str:
        """A SELECT of the index rows for the records in ``source``."""
        return (
            f"SELECT hash({self.column}) AS h, min(start_time) AS first,"
            f" max(start_time) AS last FROM {source} WHERE {self.where} GROUP BY {self.column}"
        )

    @property
    def hits(self) -> str:
        """The ids of ``$ids`` with index rows overlapping ``[$lo, $hi]``, and the first
        and last start time of those rows: (id, first, last)."""
        return (
            f"SELECT i.id, min(x.first), max(x.last) FROM {self.table} x"
            " JOIN (SELECT id, hash(id) AS h FROM (SELECT unnest($ids::VARCHAR[]) AS id)) i"
            " ON x.h = i.h WHERE x.last >= $lo AND x.first <= $hi GROUP BY i.id"
        )

    @property
    def bounds(self) -> str:
        """The first and last start time of the records with the id ``$id``."""
        return f"SELECT min(first), max(last) FROM {self.table} WHERE h = hash($id)"


TRACES = LookupIndex("trace_index", "trace_id", "trace_id <> ''")
RESPONSES = LookupIndex("response_index", "response_id", "kind = 'llm' AND response_id <> ''")
INDEXES = (TRACES, RESPONSES)
# Bumped when an index's rows change meaning: a store opened with another version (or none,
# from before the index) builds its indexes again from ``records``.
VERSION = "2"
