-- The layout of release 0.1.0, the first one; frozen: later changes are new migrations.
-- Every statement is IF NOT EXISTS, so a file written by 0.1.0 (which had no migration table)
-- is adopted as it is, and a new file starts from the same layout as every existing one.

CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE SCHEMA IF NOT EXISTS meta;

-- Which service the data in this file came from: 'justoneapi' or 'simulator'. One row, set once.
CREATE TABLE IF NOT EXISTS meta.data_source (
    source      VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.note_pages (
    creator_id      VARCHAR   NOT NULL,  -- Xiaohongshu user id (24 hex)
    snapshot_date   DATE      NOT NULL,  -- day in Asia/Shanghai on which the API was read
    page_number     INTEGER   NOT NULL,  -- pageNumber requested, from 1
    request_params  JSON      NOT NULL,  -- query sent, without the token
    fetched_at      TIMESTAMP NOT NULL,  -- when the page arrived, UTC
    attempts        INTEGER   NOT NULL,  -- HTTP calls it took (1 = no retry)
    code            INTEGER   NOT NULL,  -- business code of the response (0)
    total           INTEGER,             -- data.total reported on this page
    item_count      INTEGER   NOT NULL,  -- length of data.list on this page
    body            JSON      NOT NULL   -- the response body verbatim
);

CREATE TABLE IF NOT EXISTS analytics.notes (
    creator_id           VARCHAR   NOT NULL,
    snapshot_date        DATE      NOT NULL,
    note_id              VARCHAR   NOT NULL,
    title                VARCHAR,
    published_date       DATE,
    is_video             BOOLEAN,
    is_advertise         BOOLEAN,
    brand_name           VARCHAR,
    read_num             BIGINT,
    like_num             BIGINT,
    collect_num          BIGINT,
    interaction_num      BIGINT,
    third_read_user_num  BIGINT,
    img_url              VARCHAR,
    list_position        INTEGER   NOT NULL,
    page_number          INTEGER   NOT NULL,
    fetched_at           TIMESTAMP NOT NULL,
    quality_issues       VARCHAR[] NOT NULL
);

CREATE TABLE IF NOT EXISTS analytics.note_rejects (
    creator_id      VARCHAR   NOT NULL,
    snapshot_date   DATE      NOT NULL,
    page_number     INTEGER   NOT NULL,
    list_position   INTEGER   NOT NULL,
    reason          VARCHAR   NOT NULL,
    item            JSON
);

CREATE TABLE IF NOT EXISTS analytics.creator_engagement_metrics (
    creator_id            VARCHAR NOT NULL,
    snapshot_date         DATE    NOT NULL,
    "window"              VARCHAR NOT NULL,  -- '30d' | '90d' | 'all'
    segment               VARCHAR NOT NULL,  -- 'all' | 'organic' | 'cooperation'
    note_count            BIGINT  NOT NULL,
    video_note_count      BIGINT  NOT NULL,
    read_median           DOUBLE,
    read_mean             DOUBLE,
    interaction_median    DOUBLE,
    like_median           DOUBLE,
    collect_median        DOUBLE,
    engagement_rate       DOUBLE,
    hundred_like_rate     DOUBLE,
    thousand_like_rate    DOUBLE,
    notes_per_week        DOUBLE,
    days_since_last_note  INTEGER,
    read_gain             BIGINT,
    previous_snapshot_date DATE,
    notes_total_reported  INTEGER
);

-- Creator names and tags from the registry file, replaced whole on every sync.
CREATE TABLE IF NOT EXISTS analytics.creators (
    creator_id    VARCHAR PRIMARY KEY,
    display_name  VARCHAR,
    tags          VARCHAR[],
    active        BOOLEAN NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);
