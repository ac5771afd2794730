-- Issue #8 (write throughput): the correlation join only ever looks for failures
-- (`outcome = 'failure'`), yet the index held every event with a correlation id. Every
-- Entra record has one and ids are random, so each success cost a random B-tree insert
-- (a page read and a page written to the WAL) that no query used. Failures only now.
DROP INDEX IF EXISTS events_by_correlation;
CREATE INDEX events_by_correlation ON events (correlation_id) WHERE correlation_id IS NOT NULL AND outcome = 'failure';
