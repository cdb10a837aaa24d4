-- Pugongying's own note figures (the Note Performance endpoint): answers verbatim, and typed
CREATE TABLE raw.pugongying_note_rates (
    "creator_id" VARCHAR NOT NULL,
    "snapshot_date" DATE NOT NULL,
    "business" VARCHAR NOT NULL,
    "note_type" VARCHAR NOT NULL,
    "date_type" VARCHAR NOT NULL,
    "advertise_switch" VARCHAR NOT NULL,
    "fetched_at" TIMESTAMP NOT NULL,
    "attempts" INTEGER NOT NULL,
    "body" JSON NOT NULL,
    PRIMARY KEY ("creator_id", "snapshot_date", "business", "note_type", "date_type")
);
CREATE TABLE analytics.pugongying_note_rates (
    "creator_id" VARCHAR NOT NULL,
    "snapshot_date" DATE NOT NULL,
    "window" VARCHAR NOT NULL,
    "segment" VARCHAR NOT NULL,
    "note_type" VARCHAR NOT NULL,
    "note_count" BIGINT,
    "video_note_count" BIGINT,
    "read_median" DOUBLE,
    "impression_median" DOUBLE,
    "like_median" DOUBLE,
    "collect_median" DOUBLE,
    "comment_median" DOUBLE,
    "share_median" DOUBLE,
    "interaction_median" DOUBLE,
    "interaction_per_note_median" DOUBLE,
    "interaction_rate" DOUBLE,
    "hundred_like_share" DOUBLE,
    "thousand_like_share" DOUBLE,
    "read_median_beyond" DOUBLE,
    "impression_median_beyond" DOUBLE,
    "interaction_beyond" DOUBLE,
    "fetched_at" TIMESTAMP NOT NULL,
    PRIMARY KEY ("creator_id", "snapshot_date", "window", "segment", "note_type")
);
