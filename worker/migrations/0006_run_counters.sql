-- Following a run costs the same at a million users as at a thousand: its counts are
-- kept in counters, maintained in the same transaction as the rows they count, instead
-- of being counted from sync_run_users at every poll. The counters are spread over a
-- few rows per run (slot: the writing session's pid modulo 16), so that replicas do not
-- queue behind one hot row; a summary sums at most 16 rows.
-- depends: 0005_missing_confirmation

CREATE TABLE sync_run_counts (
    run_id      uuid NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    slot        smallint NOT NULL,
    matched     bigint NOT NULL DEFAULT 0,
    done        bigint NOT NULL DEFAULT 0,
    created     bigint NOT NULL DEFAULT 0,
    updated     bigint NOT NULL DEFAULT 0,
    unchanged   bigint NOT NULL DEFAULT 0,
    failed      bigint NOT NULL DEFAULT 0,
    deactivated bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, slot)
);

INSERT INTO sync_run_counts (run_id, slot, matched, done, created, updated, unchanged,
                             failed, deactivated)
SELECT run_id, 0, count(*), count(outcome),
       count(*) FILTER (WHERE outcome = 'created'),
       count(*) FILTER (WHERE outcome = 'updated'),
       count(*) FILTER (WHERE outcome = 'unchanged'),
       count(*) FILTER (WHERE outcome = 'failed'),
       count(*) FILTER (WHERE deactivated)
FROM sync_run_users GROUP BY run_id;

-- Completion is now matched = done. The partial index on open rows made every outcome
-- update touch an index (no HOT update) and filled with dead entries that each
-- completion check walked: its cost grew with the run.
DROP INDEX sync_run_users_open;
-- Room on each page for the outcome update to stay on it (a HOT update).
ALTER TABLE sync_run_users SET (fillfactor = 70);

-- Per-user rows of old runs are pruned (ASSETSYNC_RUN_RETENTION_DAYS); the counts stay.
ALTER TABLE sync_runs ADD COLUMN users_pruned_at timestamptz;

CREATE OR REPLACE VIEW sync_run_summary AS
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
       EXTRACT(EPOCH FROM COALESCE(r.finished_at, now()) - r.started_at)::float8 AS duration_s,
       r.missing_checked,
       r.users_pruned_at
FROM sync_runs r
LEFT JOIN LATERAL (
    SELECT sum(matched)::bigint     AS matched,
           sum(created)::bigint     AS created,
           sum(updated)::bigint     AS updated,
           sum(unchanged)::bigint   AS unchanged,
           sum(failed)::bigint      AS failed,
           sum(deactivated)::bigint AS deactivated,
           sum(done)::bigint        AS done
    FROM sync_run_counts c WHERE c.run_id = r.id
) c ON true;
