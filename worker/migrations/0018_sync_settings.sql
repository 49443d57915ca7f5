-- The sync settings an administrator changes on the console, and the audit log of every
-- change made there. Each save is a new version holding every stored setting (a JSON
-- object by setting name); workers read the newest and follow it within seconds. A
-- setting absent from it has its default, and an ASSETSYNC_* variable still wins.
-- depends: 0006_run_counters

CREATE TABLE sync_settings (
    version  bigint PRIMARY KEY CHECK (version > 0),
    settings jsonb NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
    saved_by text NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);

-- Who did what, when, with the old and the new value: settings changed, runs
-- requested, assets marked missing, dead letters replayed or deleted.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL,
    subject   text NOT NULL,
    old_value jsonb,
    new_value jsonb
);
