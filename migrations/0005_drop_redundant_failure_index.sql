-- Issue #8 (write cost per failure). `events_failures (occurred_at DESC, id DESC) WHERE
-- outcome = 'failure'` repeats `events_by_occurred (occurred_at)`: an index ends with the
-- rowid, so the latter already gives the events page its (occurred_at, id) order, and
-- since 0004 every row is a failure or an interrupt, so the partial index saved almost
-- nothing while every failure paid one more B-tree insert. The events-page plans are
-- pinned by a test (store::queries, no page sorts).
DROP INDEX IF EXISTS events_failures;
