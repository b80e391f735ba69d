"""Narrow tables that say where the records with a given trace or response id are.

Trace and response ids are random, and ``records`` is in time order, so finding the
records with one of a batch's ids means reading the id column of every record in the
look-up window: per write batch that grew with the data (the writer looks for the
batch's traces within hours, for copies of its responses within a day). An index row is
(hash of the id, first and last start time of its records in one write batch, and that
batch's number): a 32-byte row per trace or response instead of a text column per
record. A look-up first finds which ids have index rows overlapping the window (almost
always none: a new trace's spans arrive together), then reads ``records`` for those ids
only, within their own time range.

The rows stay in the order they were written (about time order), so zone maps on
``first``/``last`` skip everything outside a window. Rows are never rewritten: a replaced
record keeps its trace, response and start time. A hash may collide: the look-up then
reads records that turn out to have another id, never misses.

A trace looked up by id without a time (pasted from a log) would read the hash column
whole; instead ``trace_sorted`` holds one row per trace hash, sorted by hash, so zone maps
find it in one row group, and only the index rows written since it was made (``seq``, the
write batch number, above the one it covers) are read besides. It is made again when the
rows written since reach its own size (at least ``SORT_EVERY``): the work stays in
proportion to what is written, and the writer never re-sorts what is sorted already at
every batch.
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
        columns = "h UBIGINT, first TIMESTAMP, last TIMESTAMP, seq BIGINT"
        return f"CREATE TABLE IF NOT EXISTS {self.table} ({columns})"

    def rows_of(self, source: str) -> str:
        """A SELECT of the index rows for the records in ``source``, written by the write
        batch ``$seq``."""
        return (
            f"SELECT hash({self.column}) AS h, min(start_time) AS first,"
            f" max(start_time) AS last, $seq::BIGINT AS seq FROM {source}"
            f" WHERE {self.where} GROUP BY {self.column}"
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


TRACES = LookupIndex("trace_index", "trace_id", "trace_id <> ''")
RESPONSES = LookupIndex("response_index", "response_id", "kind = 'llm' AND response_id <> ''")
INDEXES = (TRACES, RESPONSES)

SORTED = "trace_sorted"
CREATE_SORTED = f"CREATE TABLE IF NOT EXISTS {SORTED} (h UBIGINT, first TIMESTAMP, last TIMESTAMP)"
# ``trace_sorted`` made from every trace index row written up to the batch ``$upto``
MAKE_SORTED = (
    f"CREATE OR REPLACE TABLE {SORTED} AS SELECT h, min(first) AS first, max(last) AS last"
    f" FROM {TRACES.table} WHERE seq <= $upto GROUP BY h ORDER BY h"
)
# The first and last start time of the records of the trace ``$id``: the sorted rows, and
# the index rows written after the batch ``$upto`` they cover.
TRACE_BOUNDS = (
    f"SELECT min(first), max(last) FROM (SELECT first, last FROM {SORTED} WHERE h = hash($id)"
    f" UNION ALL SELECT first, last FROM {TRACES.table} WHERE seq > $upto AND h = hash($id))"
)
# Make ``trace_sorted`` again once this many index rows (or as many as it holds) came since.
SORT_EVERY = 200_000
# Bumped when an index's rows change meaning: a store opened with another version (or none,
# from before the index) builds its indexes again from ``records``.
VERSION = "3"
