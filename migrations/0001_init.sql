-- passportd store, version 1. Never edit a landed migration: add a new one.
-- Times are Unix milliseconds (UTC): compact, ordered, and cheap to compare.

CREATE TABLE incidents (
    id               INTEGER PRIMARY KEY,
    fingerprint      TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    code             INTEGER,
    app              TEXT,
    tenant           TEXT,
    entry_id         TEXT,
    title            TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    first_seen       INTEGER NOT NULL,
    last_seen        INTEGER NOT NULL,
    event_count      INTEGER NOT NULL DEFAULT 0,
    users_affected   INTEGER NOT NULL DEFAULT 0,
    sources          TEXT    NOT NULL DEFAULT '',
    remediation      TEXT    NOT NULL,
    reopened_count   INTEGER NOT NULL DEFAULT 0,
    opened_at        INTEGER NOT NULL,
    acknowledged_by  TEXT,
    acknowledged_at  INTEGER,
    resolved_at      INTEGER
);
-- The engine looks up the newest incident of a fingerprint on every failure.
CREATE INDEX incidents_by_fingerprint ON incidents (fingerprint, id DESC);
-- The API lists by status, newest last_seen first, with a keyset on (last_seen, id).
CREATE INDEX incidents_by_status_last_seen ON incidents (status, last_seen DESC, id DESC);
CREATE INDEX incidents_by_last_seen ON incidents (last_seen DESC, id DESC);

-- Exact users_affected: one row per (incident, keyed hash of the user).
CREATE TABLE incident_users (
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_key    TEXT    NOT NULL,
    PRIMARY KEY (incident_id, user_key)
) WITHOUT ROWID;

CREATE TABLE events (
    id                INTEGER PRIMARY KEY,
    -- Idempotency key: "id:<record id>" or "pos:<file key>:<offset>".
    dedup_key         TEXT    NOT NULL UNIQUE,
    source            TEXT    NOT NULL,
    format            TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    occurred_at       INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'interrupt')),
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
    incident_id       INTEGER REFERENCES incidents (id) ON DELETE SET NULL
);
CREATE INDEX events_by_occurred ON events (occurred_at);
CREATE INDEX events_by_incident ON events (incident_id, occurred_at DESC, id DESC) WHERE incident_id IS NOT NULL;
CREATE INDEX events_failures ON events (occurred_at DESC, id DESC) WHERE outcome = 'failure';

-- Read positions of tailed file generations, committed with the events they produced.
CREATE TABLE checkpoints (
    file_key     TEXT    PRIMARY KEY,
    source       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    dev          INTEGER NOT NULL,
    ino          INTEGER NOT NULL,
    -- The first bytes of the file (up to 1 KiB), extended as the file grows.
    fingerprint  BLOB    NOT NULL,
    file_offset  INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT '',
    updated_at   INTEGER NOT NULL
);
CREATE INDEX checkpoints_by_inode ON checkpoints (dev, ino);

-- Small key/value facts about the store itself (e.g. the event-time watermark).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
