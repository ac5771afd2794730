-- Correlation ids are GUIDs and join a Passport line to its Entra record; a Mac's log
-- often writes them in capitals, Entra in lower case. New rows are stored lower-cased;
-- this makes the rows stored before comparable with them. SQLite's lower() folds ASCII
-- only, as the daemon does.
UPDATE events SET correlation_id = lower(correlation_id)
 WHERE correlation_id IS NOT NULL AND correlation_id <> lower(correlation_id);
