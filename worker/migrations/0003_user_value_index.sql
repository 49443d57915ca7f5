-- Look-ups by Jira identity without the field id (SELECT ... FROM user_assets WHERE
-- jira_id = ...) use this index; the (field_id, value_user) index it replaces served
-- no query that asset_values_unique_user does not serve already.
-- depends: 0002_sync_runs

DROP INDEX asset_values_user;
CREATE INDEX asset_values_user ON asset_values (value_user) WHERE value_user IS NOT NULL;
