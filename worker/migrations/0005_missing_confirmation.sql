-- An asset is marked missing only once Jira confirms (404) that its user is gone: a run
-- looks up the users of the assets its scan did not reach. missing_checked counts those
-- look-ups; missing, since this version, counts the users Jira confirmed gone.
-- depends: 0004_signing_key

ALTER TABLE sync_runs ADD COLUMN missing_checked int NOT NULL DEFAULT 0;

-- The same view, with missing_checked added at the end.
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
       r.missing_checked
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
