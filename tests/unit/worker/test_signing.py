"""Signatures of the workers' per-user messages, with key ids and rotation (worker/signing.py)."""

from __future__ import annotations

import pytest

from worker.errors import InvalidMessage
from worker.signing import SIGNATURE_HEADER, KeyRing, Signer, SigningKey

OLD = SigningKey(1, b"k1-sixteen-bytes!")
NEW = SigningKey(2, b"k2-sixteen-bytes!")
BODY = b'{"type": "user-sync"}'


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def headers(value: str) -> dict[str, str]:
    return {SIGNATURE_HEADER: value}


def test_key_1_signs_without_a_key_id_as_0_2_0_did_and_later_keys_name_themselves():
    assert KeyRing(OLD).sign(BODY).startswith("hmac-sha256=")
    assert KeyRing(NEW).sign(BODY).startswith("key=2;hmac-sha256=")


def test_during_the_window_both_keys_are_accepted_and_after_it_the_old_one_is_refused():
    clock = Clock()
    ring = KeyRing(NEW, (SigningKey(1, OLD.secret, retires_in=10),), read_at=clock.now)
    signer = Signer(ring, reload=lambda: ring, refresh=1000, clock=clock)
    signed_old = KeyRing(OLD).sign(BODY)

    signer.check(BODY, headers(signed_old))
    signer.check(BODY, headers(signer.sign(BODY)))
    clock.now += 10

    with pytest.raises(InvalidMessage, match="signing key 1, retired since"):
        signer.check(BODY, headers(signed_old))
    signer.check(BODY, headers(signer.sign(BODY)))


def test_a_key_id_this_replica_does_not_know_yet_makes_it_read_the_keys_once():
    clock = Clock()
    reads = []
    rotated = KeyRing(NEW, (SigningKey(1, OLD.secret, retires_in=60),), read_at=clock.now)

    def reload() -> KeyRing:
        reads.append(clock.now)
        return rotated

    signer = Signer(KeyRing(OLD, read_at=clock.now), reload=reload, refresh=1000, clock=clock)
    clock.now += 0.01
    signer.check(BODY, headers(KeyRing(NEW).sign(BODY)))  # another replica rotated first

    assert reads == [100.01]
    assert signer.sign(BODY).startswith("key=2;")
    forged = "key=7;" + KeyRing(NEW).sign(BODY).split(";")[1]
    clock.now += 1
    for _ in range(5):  # unknown ids from a stranger cost one read a second, not one each
        with pytest.raises(InvalidMessage, match="bad signature"):
            signer.check(BODY, headers(forged))
    assert len(reads) == 2


def test_the_ring_is_read_again_after_the_refresh_interval():
    clock = Clock()
    rings = iter([KeyRing(NEW, read_at=110.0)])
    signer = Signer(
        KeyRing(OLD, read_at=clock.now), reload=lambda: next(rings), refresh=10, clock=clock
    )

    assert signer.sign(BODY).startswith("hmac-sha256=")
    clock.now = 110.0
    assert signer.sign(BODY).startswith("key=2;")


@pytest.mark.parametrize(
    "given",
    [
        None,
        "hmac-sha256=00",
        "key=2;hmac-sha256=00",
        "key=;hmac-sha256=00",
        "key=x;hmac-sha256=00",
        "key=99999999999999;hmac-sha256=00",
        "key=2",
    ],
)
def test_unsigned_or_badly_signed_bodies_are_refused(given):
    signer = Signer(KeyRing(NEW, (OLD,)))
    with pytest.raises(InvalidMessage):
        signer.check(BODY, {SIGNATURE_HEADER: given} if given is not None else {})


def test_a_signature_of_another_body_is_refused_whatever_key_it_names():
    signer = Signer(KeyRing(NEW, (OLD,)))
    with pytest.raises(InvalidMessage, match="bad signature"):
        signer.check(BODY + b" ", headers(KeyRing(NEW).sign(BODY)))
