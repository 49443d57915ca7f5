"""The asset store's guarantees, held by the database itself: a value sits in a field of
its asset's type, in the column of that field's type; a unique field holds each value
once; a field's changes reach its values, and a field that holds values stays.

Migration 0022 checks values against their fields once per statement instead of with a
foreign key per row; these tests hold either way, and with existing data upgraded."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from worker.mapping import AssetPlan
from worker.settings import DEFAULT_FIELD_MAP, JIRA_FIELDS
from worker.store import Folders, Store, apply_plans, load_scheme
from worker.store.migrate import MIGRATIONS, ensure_database, yoyo_url

VALUE = (
    "INSERT INTO asset_values (asset_id, asset_type_id, field_id, field_type, is_unique,"
    " value_text, value_user, value_bool) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def field(conn, name: str, asset_type: str = "Employee") -> tuple[int, int]:
    """(field id, asset type id) of a field."""
    row = conn.execute(
        "SELECT f.id, t.id FROM asset_fields f JOIN asset_types t ON t.id = f.asset_type_id"
        " WHERE t.name = %s AND f.name = %s",
        [asset_type, name],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def new_asset(conn, asset_type_id: int) -> int:
    conn.execute("INSERT INTO folders (name) VALUES ('Employees') ON CONFLICT DO NOTHING")
    [[asset_id]] = conn.execute(
        "INSERT INTO assets (asset_type_id, folder_id)"
        " SELECT %s, id FROM folders WHERE name = 'Employees' RETURNING id",
        [asset_type_id],
    ).fetchall()
    return int(asset_id)


def test_a_value_in_the_column_of_its_fields_type_is_accepted(database):
    with psycopg.connect(database) as conn:
        username, employee = field(conn, "Username")
        asset = new_asset(conn, employee)
        conn.execute(VALUE, [asset, employee, username, "text", False, "jdoe", None, None])
        [[stored]] = conn.execute(
            "SELECT value_text FROM asset_values WHERE asset_id = %s", [asset]
        ).fetchall()
    assert stored == "jdoe"


@pytest.mark.parametrize(
    ("claimed_type", "claimed_unique", "columns"),
    [
        ("boolean", False, (None, None, True)),  # a text field's value claimed boolean
        ("text", True, ("jdoe", None, None)),  # claimed unique, so out of the unique check
        ("user", True, (None, "jdoe", None)),  # a text field holding a user
    ],
)
def test_a_value_that_misstates_its_fields_type_or_uniqueness_is_refused(
    database, claimed_type, claimed_unique, columns
):
    with psycopg.connect(database) as conn:
        username, employee = field(conn, "Username")
        asset = new_asset(conn, employee)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(VALUE, [asset, employee, username, claimed_type, claimed_unique, *columns])


def test_a_value_in_a_field_of_another_asset_type_is_refused(database):
    with psycopg.connect(database) as conn:
        employee = field(conn, "Username")[1]
        [[laptop]] = conn.execute(
            "INSERT INTO asset_types (name) VALUES ('Laptop') RETURNING id"
        ).fetchall()
        [[serial]] = conn.execute(
            "INSERT INTO asset_fields (asset_type_id, name, field_type)"
            " VALUES (%s, 'Serial', 'text') RETURNING id",
            [laptop],
        ).fetchall()
        asset = new_asset(conn, employee)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):  # the field's type claimed
            conn.execute(VALUE, [asset, employee, serial, "text", False, "X1", None, None])
        conn.rollback()
        asset = new_asset(conn, employee)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):  # the asset's type claimed
            conn.execute(VALUE, [asset, laptop, serial, "text", False, "X1", None, None])


def test_a_value_of_an_unknown_field_or_asset_is_refused(database):
    with psycopg.connect(database) as conn:
        username, employee = field(conn, "Username")
        asset = new_asset(conn, employee)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(VALUE, [asset, employee, 9999, "text", False, "x", None, None])
        conn.rollback()
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(VALUE, [424242, employee, username, "text", False, "x", None, None])


def test_one_bad_row_refuses_the_whole_statement(database):
    with psycopg.connect(database) as conn:
        username, employee = field(conn, "Username")
        full_name = field(conn, "Full name")[0]
        asset = new_asset(conn, employee)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO asset_values (asset_id, asset_type_id, field_id, field_type,"
                " is_unique, value_text, value_bool) VALUES"
                " (%s, %s, %s, 'text', false, 'jdoe', NULL),"
                " (%s, %s, %s, 'boolean', false, NULL, true)",
                [asset, employee, username, asset, employee, full_name],
            )
        conn.rollback()
        [[left]] = conn.execute("SELECT count(*) FROM asset_values").fetchall()
    assert left == 0


def test_an_update_that_moves_a_value_out_of_its_field_is_refused(database):
    with psycopg.connect(database) as conn:
        username, employee = field(conn, "Username")
        active = field(conn, "Active")[0]
        asset = new_asset(conn, employee)
        conn.execute(VALUE, [asset, employee, username, "text", False, "jdoe", None, None])
        conn.commit()
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "UPDATE asset_values SET field_id = %s WHERE asset_id = %s", [active, asset]
            )


def test_a_field_that_holds_values_cannot_be_deleted_and_an_empty_one_can(database):
    with psycopg.connect(database) as conn:
        username, employee = field(conn, "Username")
        asset = new_asset(conn, employee)
        conn.execute(VALUE, [asset, employee, username, "text", False, "jdoe", None, None])
        conn.commit()
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("DELETE FROM asset_fields WHERE id = %s", [username])
        conn.rollback()
        # Refused either way: by the foreign key before 0022, by its guard since.
        refused = (psycopg.errors.ForeignKeyViolation, psycopg.errors.FeatureNotSupported)
        with pytest.raises(refused):
            conn.execute("TRUNCATE asset_fields")
        conn.rollback()
        email = field(conn, "E-mail")[0]
        conn.execute("DELETE FROM asset_fields WHERE id = %s", [email])
        conn.commit()
        [[fields]] = conn.execute("SELECT count(*) FROM asset_fields").fetchall()
    assert fields == 4


def test_a_fields_changes_reach_its_values(database):
    with psycopg.connect(database) as conn:
        username, employee = field(conn, "Username")
        asset = new_asset(conn, employee)
        conn.execute(VALUE, [asset, employee, username, "text", False, "jdoe", None, None])
        conn.execute("UPDATE asset_fields SET is_unique = true WHERE id = %s", [username])
        conn.execute("UPDATE asset_fields SET id = 77 WHERE id = %s", [username])
        conn.execute("UPDATE asset_fields SET name = 'Login' WHERE id = 77")  # names: not copied
        row = conn.execute(
            "SELECT field_id, is_unique FROM asset_values WHERE asset_id = %s", [asset]
        ).fetchone()
        assert row == (77, True)
        # A type change is refused while values of the old type remain (their CHECKs).
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE asset_fields SET field_type = 'boolean' WHERE id = 77")


def test_deleting_an_asset_deletes_its_values(database):
    with psycopg.connect(database) as conn:
        username, employee = field(conn, "Username")
        asset = new_asset(conn, employee)
        conn.execute(VALUE, [asset, employee, username, "text", False, "jdoe", None, None])
        conn.execute("DELETE FROM assets WHERE id = %s", [asset])
        [[left]] = conn.execute("SELECT count(*) FROM asset_values").fetchall()
    assert left == 0


def test_a_field_change_waits_for_values_being_written_and_then_reaches_them(database):
    """No value checked against a field's old definition is left behind by its change:
    the change waits for the transaction writing values, then updates them too."""
    writer = psycopg.connect(database)
    username, employee = field(writer, "Username")
    asset = new_asset(writer, employee)
    writer.execute(VALUE, [asset, employee, username, "text", False, "jdoe", None, None])
    changed = threading.Event()

    def change() -> None:
        with psycopg.connect(database) as admin:
            admin.execute("UPDATE asset_fields SET is_unique = true WHERE id = %s", [username])
        changed.set()

    thread = threading.Thread(target=change)
    thread.start()
    time.sleep(0.5)
    assert not changed.is_set()  # waiting for the writer's values
    writer.commit()
    thread.join(10)
    assert changed.is_set()
    [[unique]] = writer.execute(
        "SELECT is_unique FROM asset_values WHERE asset_id = %s", [asset]
    ).fetchall()
    writer.close()
    assert unique is True


def plans(n: int) -> list[AssetPlan]:
    seen = datetime.now(UTC)
    return [
        AssetPlan(
            jira_id=f"JIRAUSER{i}",
            folder=("Employees",),
            values={
                "User": f"JIRAUSER{i}",
                "Username": f"user{i}",
                "Full name": f"User {i}",
                "E-mail": f"user{i}@example.com",
                "Active": i % 2 == 0,
            },
            seen_at=seen,
        )
        for i in range(n)
    ]


def test_upgrading_keeps_every_asset_and_its_guarantees(infra):
    """Assets written before 0022 read the same after it, and still cannot be doubled."""
    name = f"assetsync_test_{uuid.uuid4().hex[:12]}"
    url = psycopg.conninfo.make_conninfo(infra.database_url, dbname=name)
    ensure_database(url)
    try:
        backend = get_backend(yoyo_url(url))
        every = read_migrations(str(MIGRATIONS))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(every.filter(lambda m: m.id < "0022")))
        store = Store(url=url, max_size=2)
        store.open()
        with store.transaction() as conn:
            scheme = load_scheme(
                conn,
                asset_type="Employee",
                user_field="User",
                field_map=DEFAULT_FIELD_MAP,
                kinds=JIRA_FIELDS,
            )
            apply_plans(conn, scheme, plans(300), folders=Folders(store))
        store.close()
        with psycopg.connect(url) as conn:
            before = conn.execute("SELECT * FROM user_assets ORDER BY asset_id").fetchall()
        with backend.lock():
            backend.apply_migrations(backend.to_apply(every))
        backend.connection.close()
        with psycopg.connect(url) as conn:
            after = conn.execute("SELECT * FROM user_assets ORDER BY asset_id").fetchall()
            assert after == before and len(after) == 300
            user, employee = field(conn, "User")
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(
                    VALUE,
                    [
                        new_asset(conn, employee),
                        employee,
                        user,
                        "user",
                        True,
                        None,
                        "JIRAUSER7",
                        None,
                    ],
                )
    finally:
        with psycopg.connect(infra.database_url, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )
