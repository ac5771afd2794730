-- Issue #8 (write throughput as the store grows).
--
-- 1. The idempotency key was `dedup_key TEXT UNIQUE`: record ids are random, so every
--    new event landed on a random leaf of that index, and once the index outgrew the
--    page cache each insert cost a page read and a 4 KB page write to the WAL. Records
--    are now unique on (dedup_at, dedup_key), where dedup_at is the record's own time
--    (0 for a record without one, whose occurred_at is the receive time and so differs
--    on every read): the same record always gives the same pair, and a file's records
--    arrive in time order, so new keys land on a few adjacent leaves and a replayed
--    file's duplicates are found in a few pages. Rows stored before this migration take
--    dedup_at = occurred_at (whether their time was their own is not known).
-- 2. Successes are only ever counted (the events API lists failures, the incident engine
--    reads failures), yet each one was a ~450-byte row with five index entries. They now
--    live in `successes`: one small row per sign-in, clustered by time, which is all the
--    summary and de-duplication need.
--
-- SQLite cannot drop a UNIQUE constraint in place, so `events` is rebuilt (ids kept).

CREATE TABLE successes (
    -- As events.dedup_at: occurred_at, or 0 when the record had no time of its own.
    dedup_at    INTEGER NOT NULL,
    -- The same idempotency key as events.dedup_key ("id:…" or "pos:…").
    dedup_key   TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    PRIMARY KEY (dedup_at, dedup_key)
) WITHOUT ROWID;

INSERT INTO successes (dedup_at, dedup_key, occurred_at, source)
    SELECT occurred_at, dedup_key, occurred_at, source FROM events WHERE outcome = 'success';

CREATE TABLE events_v4 (
    id                INTEGER PRIMARY KEY,
    -- Idempotency key: "id:<record id>" or "pos:<file key>:<offset>"; unique with dedup_at.
    dedup_key         TEXT    NOT NULL,
    dedup_at          INTEGER NOT NULL,
    source            TEXT    NOT NULL,
    format            TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    occurred_at       INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('failure', 'interrupt')),
    category          TEXT,
    code              INTEGER,
    codes             TEXT,
    entry_id          TEXT,
    message           TEXT,
    user              TEXT,
    app_id            TEXT,
    app_name          TEXT,
    tenant_id         TEXT,
    client_app        TEXT,
    auth_protocol     TEXT,
    token_issuer_type TEXT,
    ip                TEXT,
    correlation_id    TEXT,
    record_id         TEXT,
    device            TEXT,
    file_key          TEXT,
    file_offset       INTEGER,
    incident_id       INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    user_key          TEXT,
    ip_key            TEXT,
    fingerprint       TEXT,
    counted           INTEGER NOT NULL DEFAULT 1
);

INSERT INTO events_v4 (id, dedup_key, dedup_at, source, format, received_at, occurred_at, outcome, category, code, codes,
        entry_id, message, user, app_id, app_name, tenant_id, client_app, auth_protocol, token_issuer_type, ip,
        correlation_id, record_id, device, file_key, file_offset, incident_id, user_key, ip_key, fingerprint, counted)
    SELECT id, dedup_key, occurred_at, source, format, received_at, occurred_at, outcome, category, code, codes,
        entry_id, message, user, app_id, app_name, tenant_id, client_app, auth_protocol, token_issuer_type, ip,
        correlation_id, record_id, device, file_key, file_offset, incident_id, user_key, ip_key, fingerprint, counted
    FROM events WHERE outcome != 'success';

DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;

CREATE UNIQUE INDEX events_dedup ON events (dedup_at, dedup_key);
CREATE INDEX events_by_occurred ON events (occurred_at);
CREATE INDEX events_by_incident ON events (incident_id, occurred_at DESC, id DESC) WHERE incident_id IS NOT NULL;
CREATE INDEX events_failures ON events (occurred_at DESC, id DESC) WHERE outcome = 'failure';
CREATE INDEX events_by_correlation ON events (correlation_id) WHERE correlation_id IS NOT NULL AND outcome = 'failure';
CREATE INDEX events_pending_by_fingerprint ON events (fingerprint, occurred_at) WHERE incident_id IS NULL AND fingerprint IS NOT NULL;
-- The spray and brute-force detectors read only credential failures (50126, 50053): the
-- indexes hold just those rows and every column the window query names (SQLite does not
-- treat a partial index's own WHERE terms as covered), so a window is read from the index
-- alone instead of one table row per failure.
CREATE INDEX events_by_ip_key ON events (ip_key, occurred_at, user_key, code, outcome)
    WHERE ip_key IS NOT NULL AND outcome = 'failure' AND code IN (50126, 50053);
CREATE INDEX events_by_user_key ON events (user_key, occurred_at, code, outcome, counted)
    WHERE user_key IS NOT NULL AND outcome = 'failure' AND counted = 1 AND code IN (50126, 50053);
CREATE INDEX events_by_code_time ON events (code, occurred_at) WHERE outcome = 'failure';
CREATE INDEX events_by_source_time ON events (source, occurred_at);
