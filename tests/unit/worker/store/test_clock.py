"""Freshness stamps on the database's clock (``worker.store.clock``), without a server:
the server's clock and the replica's monotonic clock are played by the test."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from worker.errors import StoreUnavailable
from worker.store.clock import DatabaseClock

SERVER_START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class World:
    """The server's clock and ours; a reading takes ``round_trip`` seconds, the server
    reading its clock halfway."""

    def __init__(self, round_trip: float = 0.0) -> None:
        self.monotonic = 1000.0
        self.round_trip = round_trip
        self.reads = 0
        self.down = False
        self.stepped = timedelta(0)  # the server's clock set back or forward

    def server_time(self) -> datetime:
        return SERVER_START + self.stepped + timedelta(seconds=self.monotonic - 1000.0)

    def read(self) -> datetime:
        if self.down:
            raise StoreUnavailable("asset store unavailable")
        self.reads += 1
        self.monotonic += self.round_trip / 2
        at = self.server_time()
        self.monotonic += self.round_trip / 2
        return at

    def clock(self, **kw: float) -> DatabaseClock:
        return DatabaseClock(self.read, monotonic=lambda: self.monotonic, **kw)


def test_stamps_follow_the_servers_clock_not_the_replicas_wall_clock() -> None:
    world = World()
    clock = world.clock()
    assert clock.now() == SERVER_START  # nothing here reads the wall clock
    world.monotonic += 12.5
    assert clock.now() == SERVER_START + timedelta(seconds=12.5)
    assert world.reads == 1  # carried forward, not read again


def test_a_stamp_is_never_ahead_of_the_server_however_long_the_round_trip() -> None:
    world = World(round_trip=0.4)
    clock = world.clock()
    for _ in range(5):
        assert clock.now() <= world.server_time()
        world.monotonic += 7.0
    # Behind by at most the time the answer took to come back.
    assert world.server_time() - clock.now() <= timedelta(seconds=0.2)


def test_the_clock_is_read_again_after_the_refresh_interval() -> None:
    world = World()
    clock = world.clock(refresh_every=30.0)
    clock.now()
    world.monotonic += 29.0
    clock.now()
    assert world.reads == 1
    world.monotonic += 2.0
    clock.now()
    assert world.reads == 2


def test_while_the_database_is_away_the_last_reading_carries_on() -> None:
    world = World()
    clock = world.clock(refresh_every=30.0)
    clock.now()
    world.down = True
    world.monotonic += 60.0
    assert clock.now() == world.server_time()
    reads = world.reads
    world.monotonic += 1.0
    clock.now()  # not asked again at every stamp while it is down
    world.down = False
    world.monotonic += 10.0
    assert clock.now() == world.server_time()
    assert world.reads == reads + 1


def test_without_any_reading_yet_a_database_that_is_away_is_said_to_be() -> None:
    world = World()
    world.down = True
    with pytest.raises(StoreUnavailable):
        world.clock().now()


def test_stamps_never_go_backwards_when_a_new_reading_comes_in_lower() -> None:
    world = World()
    clock = world.clock(refresh_every=1.0)
    first = clock.now()
    world.stepped = -timedelta(seconds=2)  # the server's clock set back (NTP)
    world.monotonic += 1.1
    assert clock.now() == first
    assert world.reads == 2


def test_threads_share_one_reading() -> None:
    world = World()
    clock = world.clock()
    stamps: list[datetime] = []
    threads = [threading.Thread(target=lambda: stamps.append(clock.now())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 8
    assert world.reads == 1
