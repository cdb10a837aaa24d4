-- meta.api_calls.endpoint: which endpoint each call went to
-- Every call stored so far went to the notes list; an INSERT that does not name the column means one too.
ALTER TABLE meta.api_calls ADD COLUMN "endpoint" VARCHAR NOT NULL DEFAULT 'notes';
