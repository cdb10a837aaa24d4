-- After metrics_window_scans.sql: the staged rows of the partitions in _keys, written to the table once
-- (see metrics.sql for why they are staged), inside the caller's transaction.
INSERT INTO analytics.creator_engagement_metrics (
    creator_id, snapshot_date, "window", segment, note_count, video_note_count, read_median, read_mean,
    interaction_median, like_median, collect_median, engagement_rate, hundred_like_rate,
    thousand_like_rate, notes_per_week, days_since_last_note, read_gain, previous_snapshot_date,
    notes_total_reported, interaction_per_note_median, brand_tagged_non_ad_count, read_max
)
SELECT
    creator_id, snapshot_date, "window", segment, note_count, video_note_count, read_median, read_mean,
    interaction_median, like_median, collect_median, engagement_rate, hundred_like_rate,
    thousand_like_rate, notes_per_week, days_since_last_note, read_gain, previous_snapshot_date,
    notes_total_reported, interaction_per_note_median, brand_tagged_non_ad_count, read_max
FROM _metrics;

DROP TABLE _metrics;
