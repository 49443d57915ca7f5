"""``console.sessions``: signed session cookies that end after their idle time."""

from __future__ import annotations

from console.sessions import SessionCodec, same_token


def test_a_session_ends_after_its_idle_time_and_cannot_be_forged():
    now = [1000.0]
    codec = SessionCodec(key=b"k" * 32, idle=60, clock=lambda: now[0])
    cookie = codec.encode(codec.new(user="ann", display_name="Ann"))
    assert codec.decode(cookie).user == "ann"
    now[0] += 59
    assert codec.decode(cookie) is not None
    now[0] += 2
    assert codec.decode(cookie) is None  # 61 s without use
    body, signature = codec.encode(codec.new(user="ann")).rsplit(".", 1)
    assert codec.decode(f"{body}x.{signature}") is None
    other = SessionCodec(key=b"another key, another console", idle=60, clock=lambda: now[0])
    assert other.decode(codec.encode(codec.new(user="ann"))) is None
    session = codec.new()
    assert (
        same_token(session, session.csrf)
        and not same_token(session, "")
        and not same_token(session, None)
    )
