-- Look-ups by Jira identity alone (SELECT ... FROM user_assets WHERE jira_id = ...):
-- asset_values_unique_user leads with field_id, so without it PostgreSQL would read the
-- whole index. The (field_id, value_user) index dropped here served no query that
-- asset_values_unique_user does not serve already.
-- depends: 0002_sync_runs

DROP INDEX asset_values_user;
CREATE INDEX asset_values_identity ON asset_values (value_user) WHERE is_unique;
