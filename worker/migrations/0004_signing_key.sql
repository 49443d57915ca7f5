-- A key the workers share to authenticate their internal messages (HMAC-SHA256), made
-- here so that a deployment needs no setting for it: whoever can read the asset store
-- already controls the assets. ASSETSYNC_SIGNING_KEY, when set, is used instead.
-- depends: 0003_user_value_index

CREATE TABLE worker_keys (
    name       text PRIMARY KEY,
    key        bytea NOT NULL CHECK (length(key) >= 16),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- gen_random_uuid() draws from PostgreSQL's strong random source: 244 random bits here.
INSERT INTO worker_keys (name, key)
VALUES ('user-sync', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
