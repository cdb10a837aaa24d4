-- The analyst's desk: peer percentiles and anomalies, each replaced whole per snapshot date

CREATE TABLE analytics.creator_peer_percentiles (
    "creator_id" VARCHAR NOT NULL,
    "snapshot_date" DATE NOT NULL,
    "peer_group" VARCHAR NOT NULL,
    "peer_count" INTEGER NOT NULL,
    "read_median" DOUBLE,
    "interaction_median" DOUBLE,
    "engagement_rate" DOUBLE,
    "hundred_like_rate" DOUBLE,
    "read_median_percentile" DOUBLE,
    "interaction_median_percentile" DOUBLE,
    "engagement_rate_percentile" DOUBLE,
    "hundred_like_rate_percentile" DOUBLE
);

CREATE TABLE analytics.anomalies (
    "kind" VARCHAR NOT NULL,
    "creator_id" VARCHAR NOT NULL,
    "note_id" VARCHAR,
    "snapshot_date" DATE NOT NULL,
    "previous_snapshot_date" DATE,
    "title" VARCHAR,
    "published_date" DATE,
    "value_before" DOUBLE,
    "value_after" DOUBLE,
    "change_per_day" DOUBLE,
    "baseline" DOUBLE,
    "threshold" DOUBLE,
    "message" VARCHAR NOT NULL
);
