-- Issue #8 (write cost must not grow with the store; BENCHMARKS.md, fourth pass).
--
-- Three indexes were led by a random key: the correlation id (a GUID), and the keyed
-- hashes of the IP and the user for the spray and brute-force detectors. Each new failure
-- landed on a random leaf of each, so once they outgrew the writer's page cache (91 MB of
-- such indexes at 3 M records against a 16 MB cache) nearly every insert cost a page read
-- and two page writes (WAL, then checkpoint), and a 1 M-record replay took 60 % longer
-- into a 3 M store than into an empty one.
--
-- Each is now led by a coarse bucket of the event time, so a batch's inserts land in the
-- current bucket's few pages whatever the store holds. The lookups name the buckets they
-- need: a detector window (10 minutes by default) one or two hourly buckets; the
-- correlation join, which now joins copies within 12 hours of each other, the half-day
-- buckets that span ±12 hours (at most three). The bucket expressions are repeated
-- verbatim in src/store/commit.rs, and tests pin that the lookups use these indexes.

DROP INDEX IF EXISTS events_by_correlation;
-- Only counted failures: an uncounted copy is never what a later copy joins.
CREATE INDEX events_by_correlation ON events (occurred_at / 43200000, correlation_id)
    WHERE correlation_id IS NOT NULL AND outcome = 'failure' AND counted = 1;

DROP INDEX IF EXISTS events_by_ip_key;
CREATE INDEX events_by_ip_key ON events (occurred_at / 3600000, ip_key, occurred_at, user_key, code, outcome)
    WHERE ip_key IS NOT NULL AND outcome = 'failure' AND code IN (50126, 50053);

DROP INDEX IF EXISTS events_by_user_key;
CREATE INDEX events_by_user_key ON events (occurred_at / 3600000, user_key, occurred_at, code, outcome, counted)
    WHERE user_key IS NOT NULL AND outcome = 'failure' AND counted = 1 AND code IN (50126, 50053);
