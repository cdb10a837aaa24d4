-- Anomalies for the snapshot dates in the temp table _dates(snapshot_date): each creator's snapshot
-- on such a date compared with its previous snapshot. Thresholds come from variables set by the
-- caller (warehouse.analyst.rebuild_anomalies): spike_factor, spike_floor, spike_baseline_days, quiet_days,
-- quiet_earlier_days, quiet_min_notes. Coverage (which notes a scan saw) comes only from
-- analytics.snapshot_coverage. Runs inside the caller's transaction, after the dates' old rows go.
INSERT INTO analytics.anomalies ({columns:analytics.anomalies})
WITH
snapshot_dates AS (
    SELECT DISTINCT creator_id, snapshot_date FROM raw.pages
),
pairs AS (
    SELECT d.creator_id, d.snapshot_date, max(s.snapshot_date) AS previous_snapshot_date
    FROM snapshot_dates AS d
    LEFT JOIN snapshot_dates AS s ON s.creator_id = d.creator_id AND s.snapshot_date < d.snapshot_date
    WHERE d.snapshot_date IN (SELECT snapshot_date FROM _dates)
    GROUP BY ALL
),
coverage AS (
    SELECT creator_id, snapshot_date, total_reported, covered_from
    FROM analytics.snapshot_coverage
    WHERE snapshot_date IN (SELECT snapshot_date FROM pairs UNION SELECT previous_snapshot_date FROM pairs)
),
compared AS (
    -- each pair with both snapshots' coverage and totals
    SELECT p.*, c.total_reported AS total_now, c.covered_from AS covered_from_now,
           b.total_reported AS total_before, b.covered_from AS covered_from_before
    FROM pairs AS p
    JOIN coverage AS c USING (creator_id, snapshot_date)
    LEFT JOIN coverage AS b ON b.creator_id = p.creator_id AND b.snapshot_date = p.previous_snapshot_date
),
now_notes AS (
    SELECT n.creator_id, n.snapshot_date, n.note_id, n.title, n.published_date, n.read_num
    FROM analytics.notes AS n
    WHERE n.snapshot_date IN (SELECT snapshot_date FROM _dates)
),
before_notes AS (
    SELECT c.creator_id, c.snapshot_date, c.previous_snapshot_date, c.covered_from_now,
           c.covered_from_before, n.note_id, n.title, n.published_date, n.read_num
    FROM compared AS c
    JOIN analytics.notes AS n
        ON n.creator_id = c.creator_id AND n.snapshot_date = c.previous_snapshot_date
),
in_both AS (
    SELECT b.creator_id, b.snapshot_date, b.previous_snapshot_date, b.note_id, w.title, w.published_date,
           b.read_num AS read_before, w.read_num AS read_now,
           (w.read_num - b.read_num) / (b.snapshot_date - b.previous_snapshot_date)::DOUBLE AS per_day
    FROM before_notes AS b
    JOIN now_notes AS w USING (creator_id, snapshot_date, note_id)
),
baselines AS (
    -- the creator's usual daily gain, all notes together: the median, over its earlier snapshot
    -- intervals ending in the last spike_baseline_days days, of read_gain per day between the
    -- snapshots (earlier only, so that the spike itself does not raise the bar)
    SELECT p.creator_id, p.snapshot_date,
           median(m.read_gain / (m.snapshot_date - m.previous_snapshot_date)::DOUBLE) AS baseline
    FROM pairs AS p
    JOIN analytics.creator_engagement_metrics AS m
        ON m.creator_id = p.creator_id
        AND m."window" = 'all' AND m.segment = 'all'
        AND m.previous_snapshot_date IS NOT NULL AND m.read_gain IS NOT NULL
        AND m.snapshot_date >= p.snapshot_date - getvariable('spike_baseline_days')
        AND m.snapshot_date < p.snapshot_date
    GROUP BY ALL
),
disappeared AS (
    SELECT 'note_disappeared' AS kind, b.creator_id, b.note_id, b.snapshot_date, b.previous_snapshot_date,
           b.title, b.published_date, b.read_num::DOUBLE AS value_before, NULL::DOUBLE AS value_after,
           NULL::DOUBLE AS change_per_day, NULL::DOUBLE AS baseline, NULL::DOUBLE AS threshold,
           format('Note "{}" (published {}, {:,} reads on {}) is not in the {} snapshot: deleted or hidden.',
                  coalesce(b.title, b.note_id), coalesce(b.published_date::VARCHAR, 'on an unknown day'),
                  coalesce(b.read_num, 0), b.previous_snapshot_date, b.snapshot_date) AS message
    FROM before_notes AS b
    ANTI JOIN now_notes AS w USING (creator_id, snapshot_date, note_id)
    -- only notes both scans covered: a complete scan covers all, a bounded one its publish days
    WHERE (b.covered_from_now IS NULL OR b.published_date >= b.covered_from_now)
      AND (b.covered_from_before IS NULL OR b.published_date >= b.covered_from_before)
),
decreased AS (
    SELECT 'reads_decreased', creator_id, note_id, snapshot_date, previous_snapshot_date, title,
           published_date, read_before::DOUBLE, read_now::DOUBLE, per_day, NULL::DOUBLE, NULL::DOUBLE,
           format('Reads of "{}" went down from {:,} on {} to {:,} on {} (a correction by the service).',
                  coalesce(title, note_id), read_before, previous_snapshot_date, read_now, snapshot_date)
    FROM in_both
    WHERE read_now < read_before
),
spikes AS (
    SELECT 'read_spike', i.creator_id, i.note_id, i.snapshot_date, i.previous_snapshot_date, i.title,
           i.published_date, i.read_before::DOUBLE, i.read_now::DOUBLE, i.per_day, l.baseline,
           greatest(getvariable('spike_factor') * l.baseline, getvariable('spike_floor'))::DOUBLE,
           format('"{}" gained {:,.0f} reads a day from {} to {} ({:,} to {:,}); the creator''s notes together usually gain {:,.0f} a day.',
                  coalesce(i.title, i.note_id), i.per_day, i.previous_snapshot_date, i.snapshot_date,
                  i.read_before, i.read_now, l.baseline)
    FROM in_both AS i
    JOIN baselines AS l USING (creator_id, snapshot_date)
    WHERE i.per_day > getvariable('spike_factor') * l.baseline AND i.per_day >= getvariable('spike_floor')
),
dropped AS (
    SELECT 'total_dropped', creator_id, NULL, snapshot_date, previous_snapshot_date, NULL, NULL::DATE,
           total_before::DOUBLE, total_now::DOUBLE, NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE,
           format('The reported note total went down from {:,} on {} to {:,} on {}.',
                  total_before, previous_snapshot_date, total_now, snapshot_date)
    FROM compared
    WHERE total_now < total_before
),
activity AS (
    SELECT w.creator_id, w.snapshot_date, c.previous_snapshot_date,
           max(w.published_date) AS last_published,
           count(*) FILTER (WHERE w.published_date BETWEEN
               w.snapshot_date - getvariable('quiet_days') - getvariable('quiet_earlier_days')
               AND w.snapshot_date - getvariable('quiet_days') - 1) AS earlier_notes
    FROM now_notes AS w
    JOIN compared AS c USING (creator_id, snapshot_date)
    GROUP BY ALL
),
quiet AS (
    SELECT 'creator_went_quiet', creator_id, NULL, snapshot_date, previous_snapshot_date, NULL,
           last_published, earlier_notes::DOUBLE, 0::DOUBLE, NULL::DOUBLE, NULL::DOUBLE,
           getvariable('quiet_min_notes')::DOUBLE,
           format('No note since {} ({} days), after {} notes in the {} days before.',
                  last_published, snapshot_date - last_published, earlier_notes,
                  getvariable('quiet_earlier_days'))
    FROM activity
    -- quiet now (the last note is older than quiet_days), and reported once: not quiet at the
    -- previous snapshot
    WHERE last_published < snapshot_date - getvariable('quiet_days')
      AND earlier_notes >= getvariable('quiet_min_notes')
      AND (previous_snapshot_date IS NULL
           OR last_published >= previous_snapshot_date - getvariable('quiet_days'))
),
findings AS (
    -- every kind lists its columns in the order of disappeared, which names them
    SELECT * FROM disappeared
    UNION ALL SELECT * FROM decreased
    UNION ALL SELECT * FROM spikes
    UNION ALL SELECT * FROM dropped
    UNION ALL SELECT * FROM quiet
)
SELECT {columns:analytics.anomalies}
FROM findings;
