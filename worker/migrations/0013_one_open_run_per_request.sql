-- An identical bulk request while a run is open joins that run: one open run per
-- (filters, dry run), enforced by the database whatever the number of replicas.
-- depends: 0019_run_pages 0022_cheaper_asset_values

-- What makes two requests the same run (schemas.messages.BulkSyncRequested.run_key);
-- NULL for runs recorded before this migration, which nothing joins.
ALTER TABLE sync_runs ADD COLUMN request_key text;
CREATE UNIQUE INDEX sync_runs_one_open_per_key ON sync_runs (request_key)
    WHERE state IN ('fanning_out', 'processing');

-- Requests that joined an open run instead of starting one; their requesters follow it.
CREATE TABLE sync_run_joins (
    request_id   uuid PRIMARY KEY,
    run_id       uuid NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL,
    joined_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_run_joins_run ON sync_run_joins (run_id);
