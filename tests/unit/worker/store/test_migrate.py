"""The URL handed to yoyo (``worker.store.migrate.yoyo_url``): any libpq URL, a failover
pair's several hosts included, with the migrations' lock timeout."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from worker.store.migrate import yoyo_url


def test_several_hosts_and_ports_reach_libpq_untouched() -> None:
    url = yoyo_url("postgresql://sync@db-a:5432,db-b:6432/assets?target_session_attrs=any")
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+psycopg"
    assert parts.hostname is None and parts.port is None  # nothing for yoyo to parse
    assert parts.username == "sync" and parts.path == "/assets"
    query = parse_qs(parts.query)
    assert query["host"] == ["db-a,db-b"] and query["port"] == ["5432,6432"]
    assert query["target_session_attrs"] == ["any"]  # the URL's own choice is kept


def test_a_password_and_options_survive_and_the_lock_timeout_joins_them() -> None:
    url = yoyo_url(
        "host=db user=sync password='p@ss word/?' dbname=assets options='-c search_path=a'",
        lock_timeout_ms=2000,
    )
    parts = urlsplit(url)
    assert parts.password is not None and "p%40ss" in url
    query = parse_qs(parts.query)
    assert query["options"] == ["-c search_path=a -c lock_timeout=2000"]
    assert query["target_session_attrs"] == ["read-write"]  # migrations must write
