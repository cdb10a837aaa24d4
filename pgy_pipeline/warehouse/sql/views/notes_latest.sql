-- Each note at its latest snapshot.
CREATE OR REPLACE VIEW analytics.notes_latest AS
SELECT *
FROM analytics.notes
QUALIFY snapshot_date = max(snapshot_date) OVER (PARTITION BY creator_id, note_id);
