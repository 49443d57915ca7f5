-- What a run's page shows, at any run size: runs newest first (keyset pages), the
-- users that failed, the assets whose users Jira confirmed gone, a dry run's preview.
-- depends: 0018_sync_settings

CREATE INDEX sync_runs_newest ON sync_runs (started_at DESC, id DESC);

-- Failed users are a handful among a run's rows. The predicate names a column that only
-- failures write, so the outcome update of every other user stays a HOT update.
CREATE INDEX sync_run_users_errors ON sync_run_users (run_id, jira_id) WHERE error IS NOT NULL;

-- The assets a run found gone (Jira answered 404 for their user): marked missing, or
-- only counted (dry run, ASSETSYNC_MISSING_USERS=ignore, more than the limit allows).
CREATE TABLE sync_run_missing (
    run_id   uuid NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    jira_id  text NOT NULL,
    asset_id bigint NOT NULL,
    marked   boolean NOT NULL,
    -- An administrator approved marking them, and Jira had this user again by then.
    came_back boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, jira_id)
);

-- A dry run's preview: per user, their name and what their asset would become
-- ({"name", "display_name", "fields": {field: [now, then]}}); NULL for real runs.
ALTER TABLE sync_run_users ADD COLUMN preview jsonb;
