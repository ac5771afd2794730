-- Incidents issue: opening gates, correlation, detectors, privacy-safe keys.

-- Keyed hashes (HMAC) of the user and IP: exact distinct counts for users_affected and
-- the spray / brute-force / lockout detectors without storing raw values.
ALTER TABLE events ADD COLUMN user_key TEXT;
ALTER TABLE events ADD COLUMN ip_key TEXT;
-- The incident fingerprint a failure belongs to, also while an opening gate holds it back.
ALTER TABLE events ADD COLUMN fingerprint TEXT;
-- True for the event that was counted for its sign-in attempt; a correlated copy (the
-- same attempt seen by Passport and by Entra) is stored but not counted twice.
ALTER TABLE events ADD COLUMN counted INTEGER NOT NULL DEFAULT 1;

CREATE INDEX events_by_correlation ON events (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX events_pending_by_fingerprint ON events (fingerprint, occurred_at) WHERE incident_id IS NULL AND fingerprint IS NOT NULL;
CREATE INDEX events_by_ip_key ON events (ip_key, occurred_at) WHERE ip_key IS NOT NULL AND outcome = 'failure';
CREATE INDEX events_by_user_key ON events (user_key, occurred_at) WHERE user_key IS NOT NULL AND outcome = 'failure';
CREATE INDEX events_by_code_time ON events (code, occurred_at) WHERE outcome = 'failure';
CREATE INDEX events_by_source_time ON events (source, occurred_at);

-- What kind of incident: a catalogue failure group, or a built-in detector's finding.
ALTER TABLE incidents ADD COLUMN kind TEXT NOT NULL DEFAULT 'failure';
-- Detector evidence as counts (JSON), never raw names.
ALTER TABLE incidents ADD COLUMN evidence TEXT;

CREATE INDEX incidents_by_category_last_seen ON incidents (category, last_seen DESC, id DESC);
CREATE INDEX incidents_by_first_seen ON incidents (first_seen DESC, id DESC);
CREATE INDEX incidents_by_event_count ON incidents (event_count DESC, id DESC);
CREATE INDEX incidents_by_users_affected ON incidents (users_affected DESC, id DESC);
CREATE INDEX incidents_resolved_at ON incidents (resolved_at) WHERE status = 'resolved';
