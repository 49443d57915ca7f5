-- The asset store: asset types with typed fields, a folder tree, assets, field values.
-- depends:

CREATE TABLE asset_types (
    id         serial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE asset_fields (
    id            serial PRIMARY KEY,
    asset_type_id int NOT NULL REFERENCES asset_types (id) ON DELETE CASCADE,
    name          text NOT NULL,
    field_type    text NOT NULL CHECK (field_type IN ('text', 'user', 'boolean', 'datetime')),
    -- A unique field holds each value at most once per field: for a user field, one
    -- asset per Jira user. Enforced by asset_values_unique_user below.
    is_unique     boolean NOT NULL DEFAULT false,
    UNIQUE (asset_type_id, name),
    UNIQUE (id, asset_type_id, field_type, is_unique)
);

CREATE TABLE folders (
    id        serial PRIMARY KEY,
    parent_id int REFERENCES folders (id),
    name      text NOT NULL CHECK (name <> '' AND strpos(name, '/') = 0),
    UNIQUE NULLS NOT DISTINCT (parent_id, name)
);

CREATE TABLE assets (
    id            bigserial PRIMARY KEY,
    asset_type_id int NOT NULL REFERENCES asset_types (id),
    folder_id     int NOT NULL REFERENCES folders (id),
    -- 'missing': the Jira user behind this asset no longer exists (bulk sync).
    sync_state    text NOT NULL DEFAULT 'active' CHECK (sync_state IN ('active', 'missing')),
    -- When the Jira data last written here was fetched: an older snapshot never
    -- overwrites a newer one.
    jira_seen_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, asset_type_id)
);

-- One row per (asset, field). The field's type and uniqueness are copied in and kept
-- honest by the composite foreign key, so the database itself checks that a value sits
-- in the column of its field's type and that unique fields stay unique.
CREATE TABLE asset_values (
    asset_id       bigint NOT NULL,
    asset_type_id  int NOT NULL,
    field_id       int NOT NULL,
    field_type     text NOT NULL,
    is_unique      boolean NOT NULL,
    value_text     text,
    value_user     text,
    value_bool     boolean,
    value_datetime timestamptz,
    PRIMARY KEY (asset_id, field_id),
    FOREIGN KEY (asset_id, asset_type_id) REFERENCES assets (id, asset_type_id) ON DELETE CASCADE,
    FOREIGN KEY (field_id, asset_type_id, field_type, is_unique)
        REFERENCES asset_fields (id, asset_type_id, field_type, is_unique) ON UPDATE CASCADE,
    CHECK (num_nonnulls(value_text, value_user, value_bool, value_datetime) = 1),
    CHECK ((value_text IS NOT NULL) = (field_type = 'text')),
    CHECK ((value_user IS NOT NULL) = (field_type = 'user')),
    CHECK ((value_bool IS NOT NULL) = (field_type = 'boolean')),
    CHECK ((value_datetime IS NOT NULL) = (field_type = 'datetime'))
);

-- Exactly one asset per (user field, Jira user); also the O(log n) lookup by user.
CREATE UNIQUE INDEX asset_values_unique_user ON asset_values (field_id, value_user) WHERE is_unique;
CREATE INDEX asset_values_user ON asset_values (field_id, value_user) WHERE value_user IS NOT NULL;

-- The default data scheme: an "Employee" per Jira user.
INSERT INTO asset_types (name) VALUES ('Employee');
INSERT INTO asset_fields (asset_type_id, name, field_type, is_unique)
SELECT t.id, f.name, f.field_type, f.is_unique
FROM asset_types t,
     (VALUES ('User', 'user', true),
             ('Username', 'text', false),
             ('Full name', 'text', false),
             ('E-mail', 'text', false),
             ('Active', 'boolean', false)) AS f (name, field_type, is_unique)
WHERE t.name = 'Employee';

-- One row per user asset, for people and reports: SELECT * FROM user_assets.
CREATE VIEW user_assets AS
WITH RECURSIVE folder_paths (id, path) AS (
    SELECT id, name FROM folders WHERE parent_id IS NULL
    UNION ALL
    SELECT f.id, p.path || '/' || f.name FROM folders f JOIN folder_paths p ON f.parent_id = p.id
)
SELECT a.id           AS asset_id,
       t.name         AS asset_type,
       u.value_user   AS jira_id,
       p.path         AS folder_path,
       (SELECT jsonb_object_agg(f.name, COALESCE(to_jsonb(v.value_text), to_jsonb(v.value_user),
                                                 to_jsonb(v.value_bool), to_jsonb(v.value_datetime)))
          FROM asset_values v JOIN asset_fields f ON f.id = v.field_id
         WHERE v.asset_id = a.id) AS fields,
       a.sync_state   AS state,
       a.created_at,
       a.updated_at
FROM assets a
JOIN asset_types t ON t.id = a.asset_type_id
JOIN asset_values u ON u.asset_id = a.id AND u.is_unique AND u.field_type = 'user'
JOIN folder_paths p ON p.id = a.folder_id;
