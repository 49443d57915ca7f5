"""A hostile or broken Jira, over a real socket: every call is bounded in time and size,
and a user Jira describes badly is refused with a reason, never an internal error.

Seen before the bounds: an answer trickling a byte at a time just under the read
timeout never ended; a 300 MiB answer took the worker from 41 to 1,540 MiB; a user
without ``key`` was an "internal error" and, in a bulk scan, failed the whole run.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from worker.errors import BadJiraUser, JiraRejected, JiraUnavailable
from worker.jira import JiraClient, UserRef

Reply = Callable[[socket.socket], None]


@pytest.fixture
def hostile() -> Iterator[Callable[[Reply], str]]:
    """A server on a real socket that answers every request with ``reply``."""
    servers: list[socket.socket] = []

    def serve(reply: Reply) -> str:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def loop() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

        def answer(conn: socket.socket) -> None:
            with conn:
                try:
                    conn.recv(65536)  # the request; its content does not matter here
                    reply(conn)
                except OSError:
                    pass

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{server.getsockname()[1]}"

    yield serve
    for server in servers:
        server.close()


@pytest.fixture
def client() -> Iterator[Callable[..., JiraClient]]:
    made: list[JiraClient] = []

    def make(url: str, **options: object) -> JiraClient:
        options.setdefault("timeout", 1.0)
        made.append(
            JiraClient(base_url=url, username=None, token="t", flavor="datacenter", **options)
        )
        return made[-1]

    yield make
    for jira in made:
        jira.close()


def json_reply(doc: object) -> Reply:
    body = json.dumps(doc).encode()

    def reply(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    return reply


def test_an_answer_that_trickles_in_is_cut_at_the_deadline(hostile, client):
    def trickle(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        for _ in range(100):
            conn.sendall(b" ")
            time.sleep(0.3)  # each byte well within the 1 s read timeout

    jira = client(hostile(trickle), deadline=2.0)
    started = time.monotonic()
    with pytest.raises(JiraUnavailable, match="took over 2s"):
        jira.fetch_user(UserRef("username", "jdoe"))
    assert time.monotonic() - started < 3.0


def test_an_answer_declared_too_large_is_refused_unread(hostile, client):
    def huge(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        conn.sendall(b"Content-Length: 314572800\r\n\r\n[")

    jira = client(hostile(huge), max_response_bytes=1024 * 1024)
    with pytest.raises(JiraRejected, match="over the limit of 1048576"):
        jira.user_list(cursor=None, max_results=1000)


def test_an_answer_that_grows_too_large_unannounced_is_cut(hostile, client):
    def endless(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 65536
        for _ in range(100):  # 6.4 MiB, past the limit
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    jira = client(hostile(endless), max_response_bytes=1024 * 1024)
    with pytest.raises(JiraRejected, match="over the limit of 1048576 bytes"):
        jira.user_list(cursor=None, max_results=1000)


def test_json_nested_too_deeply_is_not_an_internal_error(hostile, client):
    deep = "[" * 100_000 + "]" * 100_000

    def reply(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(deep)}\r\n\r\n{deep}".encode())

    jira = client(hostile(reply))
    with pytest.raises(JiraUnavailable, match="non-JSON"):
        jira.user_list(cursor=None, max_results=1000)


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ({"name": "jdoe", "displayName": "Jane"}, "no key"),
        ({"key": "", "name": "jdoe"}, "jira_id"),
        ({"key": "K1", "name": "jdoe", "displayName": "x" * 5000}, "display_name"),
        ({"key": "K1", "name": "jd\u0000oe"}, "name"),
        ({"key": "K1", "name": "jdoe", "active": "maybe"}, "active"),
        ({"key": ["K1"], "name": "jdoe"}, "jira_id"),
        ("just a string", "user"),
    ],
)
def test_a_user_jira_describes_badly_is_refused_with_a_reason(hostile, client, user, why):
    jira = client(hostile(json_reply(user)))
    with pytest.raises(BadJiraUser, match=why):
        jira.fetch_user(UserRef("username", "jdoe"))


def test_data_centers_string_active_flag_is_read(hostile, client):
    jira = client(hostile(json_reply({"key": "K1", "name": "jdoe", "active": "false"})))
    assert jira.fetch_user(UserRef("username", "jdoe")).active is False
