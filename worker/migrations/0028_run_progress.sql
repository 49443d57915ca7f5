-- A run that cannot make progress says so instead of staying open for good: worker
-- replicas watch every open run (worker/run_watch.py) and note here when its counters
-- last moved, or its scan was last seen holding its run lock; a run idle for longer
-- than ASSETSYNC_RUN_STALL_AFTER ends failed, its users still open counted failed,
-- with the reason. Readers of runs (the admin script, the console) show how long an
-- open run has been idle. Only columns are added: replicas of the previous version
-- never read them.
-- depends: 0020_missing_approvals

ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS progress_mark bigint;  -- matched + done, as last seen
ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS progressed_at timestamptz;  -- when it last changed

-- The same view, with progressed_at added at the end.
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
       r.users_pruned_at,
       COALESCE(r.progressed_at, r.started_at) AS progressed_at
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
