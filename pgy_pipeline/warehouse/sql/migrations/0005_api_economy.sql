-- api economy: window scans recorded on raw pages, the billing ledger meta.api_calls, all-time note counts nullable on window-scan days
-- Pages stored so far came from full scans; an INSERT that does not name the column means one too.
ALTER TABLE raw.note_pages ADD COLUMN "scan" VARCHAR NOT NULL DEFAULT 'full';
ALTER TABLE raw.note_pages ADD COLUMN "scan_window_from" DATE;

-- On a window-scan day window 'all' is not computed from notes the scan did not read.
ALTER TABLE analytics.creator_engagement_metrics ALTER COLUMN "note_count" DROP NOT NULL;
ALTER TABLE analytics.creator_engagement_metrics ALTER COLUMN "video_note_count" DROP NOT NULL;
ALTER TABLE analytics.creator_engagement_metrics ALTER COLUMN "brand_tagged_non_ad_count" DROP NOT NULL;

CREATE TABLE meta.api_calls (
    "call_id" VARCHAR NOT NULL,
    "called_at" TIMESTAMP NOT NULL,
    "run_id" VARCHAR,
    "creator_id" VARCHAR NOT NULL,
    "snapshot_date" DATE NOT NULL,
    "page_number" INTEGER NOT NULL,
    "attempt" INTEGER NOT NULL,
    "http_status" INTEGER,
    "code" INTEGER,
    "outcome" VARCHAR NOT NULL,
    "billed" BOOLEAN NOT NULL,
    "latency_ms" DOUBLE NOT NULL,
    "bytes" BIGINT NOT NULL,
    PRIMARY KEY ("call_id")
);
