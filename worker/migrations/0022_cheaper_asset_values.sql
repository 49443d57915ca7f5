-- Writing an asset's values costs PostgreSQL a third less, with the same guarantees:
-- every value sits in a field of its asset's type, in the column of that field's type,
-- and a unique field holds each value once (one asset per Jira user).
--
-- Until now a foreign key from every value row to its field checked that row's copy of
-- the field's type and uniqueness: an index look-up and a row lock, run once per value
-- row (five per new user asset), the largest single cost of a bulk sync in PostgreSQL
-- (pg_stat_statements; bench/README.md). The same check is now made once per
-- statement, over all the rows it wrote. Field definitions, which an administrator
-- changes rarely, wait for the transactions writing values instead of every value
-- locking its field; their changes still reach the values (as ON UPDATE CASCADE did),
-- and a field that still holds values cannot be deleted.
--
-- The identity look-ups get one index instead of two: (value_user, field_id) serves both
-- "this user field, these users" and "this Jira identity" (user_assets WHERE jira_id).
-- depends: 0019_run_pages

CREATE UNIQUE INDEX asset_values_unique_identity ON asset_values (value_user, field_id) WHERE is_unique;
DROP INDEX asset_values_unique_user;
DROP INDEX asset_values_identity;
ALTER INDEX asset_values_unique_identity RENAME TO asset_values_unique_user;

ALTER TABLE asset_values DROP CONSTRAINT asset_values_field_id_asset_type_id_field_type_is_unique_fkey;

-- Rows an INSERT or UPDATE of asset_values wrote, checked against their fields. Runs
-- after the statement, so a batch of a thousand rows costs one join, not a thousand
-- look-ups. No row lock is needed: a field change locks asset_values (below).
CREATE FUNCTION asset_values_check_fields() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT v.asset_id, v.field_id, v.asset_type_id, v.field_type, v.is_unique INTO bad
      FROM written v
     WHERE NOT EXISTS (SELECT FROM asset_fields f
                        WHERE f.id = v.field_id AND f.asset_type_id = v.asset_type_id
                          AND f.field_type = v.field_type AND f.is_unique = v.is_unique)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'asset value of asset % is not in a field of its asset type with that field''s type and uniqueness', bad.asset_id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'asset_values',
                  DETAIL = format('field %s, asset type %s, field type %s, unique %s',
                                  bad.field_id, bad.asset_type_id, bad.field_type, bad.is_unique);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER asset_values_fields_on_insert AFTER INSERT ON asset_values
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION asset_values_check_fields();
CREATE TRIGGER asset_values_fields_on_update AFTER UPDATE ON asset_values
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION asset_values_check_fields();

-- A field's change or removal first waits for every transaction writing values to end
-- (SHARE ROW EXCLUSIVE conflicts with their ROW EXCLUSIVE, and with itself), so that no
-- value checked against the field's old definition is still uncommitted. Then its
-- values follow the change, or the removal is refused while values remain.
CREATE FUNCTION asset_fields_guard_values() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.id, NEW.asset_type_id, NEW.field_type, NEW.is_unique)
                            IS NOT DISTINCT FROM (OLD.id, OLD.asset_type_id, OLD.field_type, OLD.is_unique) THEN
        RETURN NULL;  -- a rename: values do not copy the name
    END IF;
    LOCK TABLE asset_values IN SHARE ROW EXCLUSIVE MODE;
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT FROM asset_values WHERE field_id = OLD.id) THEN
            RAISE EXCEPTION 'field % (%) still holds values', OLD.id, OLD.name
                USING ERRCODE = 'foreign_key_violation', TABLE = 'asset_fields';
        END IF;
    ELSE
        UPDATE asset_values
           SET field_id = NEW.id, asset_type_id = NEW.asset_type_id,
               field_type = NEW.field_type, is_unique = NEW.is_unique
         WHERE field_id = OLD.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER asset_fields_guard_values AFTER UPDATE OR DELETE ON asset_fields
    FOR EACH ROW EXECUTE FUNCTION asset_fields_guard_values();

-- TRUNCATE fires no row triggers: refuse it while any value remains (a foreign key did).
CREATE FUNCTION asset_fields_guard_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM asset_values) THEN
        RAISE EXCEPTION 'asset_fields cannot be truncated while asset_values has rows'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'asset_fields';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER asset_fields_guard_truncate BEFORE TRUNCATE ON asset_fields
    FOR EACH STATEMENT EXECUTE FUNCTION asset_fields_guard_truncate();
