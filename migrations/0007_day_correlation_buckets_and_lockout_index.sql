-- Issue #8 (the SQLite thread is the writer's bottleneck; BENCHMARKS.md, seventh pass).
--
-- 1. The correlation join probes every bucket its ±12 h window touches. With half-day
--    buckets that is always three probes per failure; with day buckets a 24 h window
--    touches at most two. The expression is repeated verbatim in src/store/commit.rs
--    (CORRELATION_BUCKET_MS), and a test pins that the join seeks this index.
-- 2. The lockout-wave detector read every AADSTS50053 failure of its window through
--    `events_by_code_time` and then the table row, for the user. A partial index of the
--    lockouts alone, holding the user, answers it from the index; only lockout rows pay
--    for it on insert. `events_by_code_time` stays: the events API filters by code.

DROP INDEX IF EXISTS events_by_correlation;
-- Only counted failures: an uncounted copy is never what a later copy joins.
CREATE INDEX events_by_correlation ON events (occurred_at / 86400000, correlation_id)
    WHERE correlation_id IS NOT NULL AND outcome = 'failure' AND counted = 1;

CREATE INDEX events_lockouts ON events (occurred_at, user_key)
    WHERE code = 50053 AND outcome = 'failure';
