-- Bulk sync runs: one row per run, one row per matched user per run.
-- depends: 0001_asset_store

CREATE TABLE sync_runs (
    id              uuid PRIMARY KEY,              -- the request_id of bulk-sync-requested
    requested_by    text NOT NULL,
    requested_at    timestamptz NOT NULL,
    username_prefix text,
    groups          text[] NOT NULL DEFAULT '{}',
    dry_run         boolean NOT NULL DEFAULT false,
    state           text NOT NULL DEFAULT 'fanning_out'
                    CHECK (state IN ('fanning_out', 'processing', 'done', 'failed')),
    -- Where the Jira scan has got to: a redelivered request continues from here.
    checkpoint      jsonb,
    error           text,
    missing         int NOT NULL DEFAULT 0,        -- assets whose Jira user is gone
    started_at      timestamptz NOT NULL DEFAULT now(),
    fanned_out_at   timestamptz,
    finished_at     timestamptz
);

-- Each user is counted once per run, however often their message is delivered: the
-- fan-out inserts the row (outcome NULL), processing fills in the outcome once.
CREATE TABLE sync_run_users (
    run_id      uuid NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    jira_id     text NOT NULL,
    outcome     text CHECK (outcome IN ('created', 'updated', 'unchanged', 'failed')),
    deactivated boolean NOT NULL DEFAULT false,
    error       text,
    PRIMARY KEY (run_id, jira_id)
);
-- "Is anything of this run still open?" stays an index probe at any run size.
CREATE INDEX sync_run_users_open ON sync_run_users (run_id) WHERE outcome IS NULL;

-- Runs with their counts, derived rather than kept in counters.
CREATE VIEW sync_run_summary AS
SELECT r.id AS run_id, r.state, r.dry_run, r.requested_by, r.requested_at,
       r.username_prefix, r.groups, r.error,
       COALESCE(c.matched, 0)     AS matched,
       COALESCE(c.created, 0)     AS created,
       COALESCE(c.updated, 0)     AS updated,
       COALESCE(c.unchanged, 0)   AS unchanged,
       COALESCE(c.deactivated, 0) AS deactivated,
       r.missing,
       COALESCE(c.failed, 0)      AS failed,
       COALESCE(c.done, 0)        AS done,
       r.started_at, r.fanned_out_at, r.finished_at,
       EXTRACT(EPOCH FROM COALESCE(r.finished_at, now()) - r.started_at)::float8 AS duration_s
FROM sync_runs r
LEFT JOIN LATERAL (
    SELECT count(*)                                   AS matched,
           count(*) FILTER (WHERE outcome = 'created')   AS created,
           count(*) FILTER (WHERE outcome = 'updated')   AS updated,
           count(*) FILTER (WHERE outcome = 'unchanged') AS unchanged,
           count(*) FILTER (WHERE outcome = 'failed')    AS failed,
           count(*) FILTER (WHERE deactivated)           AS deactivated,
           count(outcome)                                AS done
    FROM sync_run_users u WHERE u.run_id = r.id
) c ON true;
