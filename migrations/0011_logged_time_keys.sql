-- A sign-in known only by when its log record was written (a Log Analytics row exported
-- without `CreatedDateTime`: its time is `TimeGenerated`, minutes after the sign-in) is
-- stored under that time, while the same sign-in's diagnostic record or Graph object is
-- stored under its own `createdDateTime`. Records are unique on (time, id), so the two
-- were both counted. The ids of the rows stored under a logged time are kept here, by id:
-- a record with its own time looks its id up here (only while the table holds any), and
-- a record with a logged time looks its id up among the rows of the hours before it.
CREATE TABLE logged_time_keys (
    dedup_key TEXT    NOT NULL PRIMARY KEY,
    -- The logged time the row was stored under (as successes.dedup_at / events.dedup_at).
    dedup_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Retention prunes it with the rows it stands for.
CREATE INDEX logged_time_keys_by_time ON logged_time_keys (dedup_at);
