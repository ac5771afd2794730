-- A detector incident's subject: the keyed hash of the IP (password spray) or of the user
-- (brute force) whose window met the threshold, "all" for a lockout wave; NULL for a
-- failure incident. It lets a detector's incident list the failures its window counted,
-- which belong to their own failure incidents (events.incident_id). Incidents opened
-- before this migration learn theirs the next time their detector fires.
ALTER TABLE incidents ADD COLUMN subject_key TEXT;
