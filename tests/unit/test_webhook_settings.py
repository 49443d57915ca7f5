"""The receiver's settings, read from the environment as in production."""

from __future__ import annotations

import pytest

from producers.webhooks.settings import WebhookSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASSETSYNC_WEBHOOK_LISTEN", "ASSETSYNC_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:8090", ("0.0.0.0", 8090)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::]:8090", ("::", 8090)),
        ("hooks.internal:443", ("hooks.internal", 443)),
    ],
)
def test_listen_address_is_host_and_port(monkeypatch, listen, expected) -> None:
    monkeypatch.setenv("ASSETSYNC_WEBHOOK_LISTEN", listen)

    assert WebhookSettings().listen == expected


@pytest.mark.parametrize("listen", ["8090", ":8090", "host:", "host:http", "host:70000"])
def test_a_listen_address_that_is_not_host_port_is_refused(monkeypatch, listen) -> None:
    monkeypatch.setenv("ASSETSYNC_WEBHOOK_LISTEN", listen)

    with pytest.raises(ValueError, match="is not HOST:PORT"):
        _ = WebhookSettings().listen


def test_a_blank_secret_counts_as_no_secret(monkeypatch) -> None:
    monkeypatch.setenv("ASSETSYNC_WEBHOOK_SECRET", "  ")

    assert WebhookSettings().secret_bytes is None
