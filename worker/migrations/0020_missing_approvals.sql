-- An administrator's approval to mark missing the assets a run found gone but left
-- alone (more than ASSETSYNC_MISSING_LIMIT): recorded by the console, carried out by a
-- worker replica in the background, each user looked up in Jira again first.
-- depends: 0015_signing_key_ring

CREATE TABLE missing_approvals (
    id          bigserial PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    approved_by text NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    waiting     integer NOT NULL CHECK (waiting >= 0),  -- users waiting when approved
    -- The replica carrying it out and until when it may (a lease it renews as it goes;
    -- once it lapses, any replica takes over). A pause after an outage has no replica.
    claimed_by    text,
    claimed_until timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    -- Users looked up so far and what came of it (written with the assets they mark).
    checked     integer NOT NULL DEFAULT 0,
    marked      integer NOT NULL DEFAULT 0,
    came_back   integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    -- Why it is paused (Jira or the asset store did not answer); cleared by progress.
    last_error  text
);
-- One open approval per run (a second click joins it); the workers' poll for open
-- approvals reads this index only, empty nearly always.
CREATE UNIQUE INDEX missing_approvals_open ON missing_approvals (run_id)
    WHERE finished_at IS NULL;
CREATE INDEX missing_approvals_of_run ON missing_approvals (run_id, id);

-- Which approval settled each user, and why Jira could not be asked about one (the
-- user is then left alone: a later approval asks again).
ALTER TABLE sync_run_missing
    ADD COLUMN approval_id bigint REFERENCES missing_approvals (id) ON DELETE SET NULL,
    ADD COLUMN failure text;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'assetsync_console') THEN
        -- The console records an approval and shows its progress; the workers mark.
        GRANT SELECT ON missing_approvals TO assetsync_console;
        GRANT INSERT (run_id, approved_by, waiting) ON missing_approvals TO assetsync_console;
        GRANT USAGE ON SEQUENCE missing_approvals_id_seq TO assetsync_console;
    END IF;
END
$$;
