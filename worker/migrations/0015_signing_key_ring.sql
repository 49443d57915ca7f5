-- The workers' signing keys move out of reach of whoever may read the asset store, and
-- can be rotated; readers of run status get roles of their own.
--
-- Keys live in schema assetsync_private, which nobody but its owner (the role that
-- migrates, the workers' role) may use: a "GRANT SELECT ON ALL TABLES IN SCHEMA public"
-- for a reporting user does not reach it. Each key has an id that signatures carry;
-- key 1 is 0.2.0's key, whose signatures carry no id (0.2.0 replicas still running
-- during an upgrade keep signing and checking them). worker_keys stays for those
-- replicas until the first rotation (python -m worker rotate-key) empties it.
-- depends: 0013_one_open_run_per_request

CREATE SCHEMA assetsync_private;
REVOKE ALL ON SCHEMA assetsync_private FROM PUBLIC;

CREATE TABLE assetsync_private.signing_keys (
    id         integer PRIMARY KEY CHECK (id > 0),
    key        bytea NOT NULL CHECK (length(key) >= 16),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- NULL: the key workers sign with (one at a time); else accepted until then.
    retires_at timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_current ON assetsync_private.signing_keys ((true))
    WHERE retires_at IS NULL;

INSERT INTO assetsync_private.signing_keys (id, key, created_at)
SELECT 1, key, created_at FROM worker_keys WHERE name = 'user-sync';

-- Least privilege for what only follows runs (README, Security): assetsync_status for
-- the admin script and the scheduled sync (read runs; record a scheduled run),
-- assetsync_console for the console (that, and its settings and audit log). Group
-- roles: a login role is made a member of one (deploy/postgres/roles.sql). Roles
-- belong to the whole PostgreSQL cluster; where the migrating role may not create
-- roles, create these two (NOLOGIN) before migrating, and the grants follow.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['assetsync_status', 'assetsync_console'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', name);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL;  -- a racing migrate
                WHEN insufficient_privilege THEN
                    RAISE WARNING 'role % not created (no CREATEROLE): create it, NOLOGIN,'
                        ' and run migrate on a fresh schema, or apply'
                        ' deploy/postgres/roles.sql', name;
            END;
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'assetsync_status') THEN
        GRANT SELECT ON sync_runs, sync_run_summary, sync_run_counts, sync_run_joins
            TO assetsync_status;
        GRANT INSERT (id, requested_by, requested_at, request_key) ON sync_runs
            TO assetsync_status;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'assetsync_console') THEN
        GRANT SELECT ON sync_runs, sync_run_summary, sync_run_counts, sync_run_joins, sync_run_users,
            sync_run_missing, sync_settings, audit_log, asset_types, asset_fields
            TO assetsync_console;
        GRANT INSERT (id, requested_by, requested_at, request_key) ON sync_runs
            TO assetsync_console;
        GRANT INSERT ON sync_settings, audit_log TO assetsync_console;
        GRANT USAGE ON SEQUENCE audit_log_id_seq TO assetsync_console;
    END IF;
END
$$;
