-- Issue #8 (BENCHMARKS.md, twenty-first pass): the correlation index led by the hour.
--
-- Within a bucket the index's keys are random (correlation ids), so every commit writes
-- again each page of the current bucket that it inserted into. With day buckets that was
-- the whole day's index at every commit: at 50 sign-ins a second, 13 % of the pages a
-- replay wrote to the write-ahead log, for 4 % of the store. With hour buckets a commit
-- rewrites the current hour's pages only. A lookup's ±12 h window now probes up to 25
-- buckets instead of 2; lookups are rare (the write path's filter of stored correlation
-- ids rules out almost all of them), and a probe of an empty bucket is one short seek.
--
-- The expression is repeated verbatim in src/store/commit.rs (CORRELATION_BUCKET_MS),
-- and a test pins that the join, the filter's fill and its paging seek this index.

DROP INDEX IF EXISTS events_by_correlation;
-- Only counted failures: an uncounted copy is never what a later copy joins.
CREATE INDEX events_by_correlation ON events (occurred_at / 3600000, correlation_id)
    WHERE correlation_id IS NOT NULL AND outcome = 'failure' AND counted = 1;
