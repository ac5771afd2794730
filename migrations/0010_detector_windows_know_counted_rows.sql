-- A lockout wave or a password spray seen both in a Mac's Passport log and in Entra
-- stores each attempt twice (the copy uncounted); the detector's failures in a window
-- are its counted rows, its users those of every copy. The IP and lockout windows are
-- read from these indexes alone, so they carry the counted flag too. Both are partial
-- on credential failures: rebuilding them reads the table once.

DROP INDEX IF EXISTS events_by_ip_key;
CREATE INDEX events_by_ip_key ON events (occurred_at / 3600000, ip_key, occurred_at, user_key, code, outcome, counted)
    WHERE ip_key IS NOT NULL AND outcome = 'failure' AND code IN (50126, 50053);

DROP INDEX IF EXISTS events_lockouts;
CREATE INDEX events_lockouts ON events (occurred_at, user_key, counted)
    WHERE code = 50053 AND outcome = 'failure';
