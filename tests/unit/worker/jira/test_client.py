"""``worker.jira.JiraClient`` at the HTTP seam, through ``httpx.MockTransport``.

Covers how Jira's answers become our errors, flavour detection, authentication headers,
which user references each flavour accepts, and how user JSON becomes a ``JiraUser``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from schemas.messages import JiraUser
from worker.errors import (
    ConfigError,
    InvalidMessage,
    JiraAuthError,
    JiraRejected,
    JiraUnavailable,
    PermanentError,
    TransientError,
    UserNotFound,
)
from worker.jira import JiraClient, UserRef

Handler = Callable[[httpx.Request], httpx.Response]
BASE = "https://jira.example.com"
JDOE = UserRef("username", "jdoe")

DC_USER: dict[str, Any] = {
    "self": f"{BASE}/rest/api/2/user?username=jdoe",
    "key": "JIRAUSER10100",
    "name": "jdoe",
    "emailAddress": "jane.doe@example.com",
    "avatarUrls": {
        "16x16": f"{BASE}/secure/useravatar?size=xsmall&ownerId=JIRAUSER10100",
        "48x48": f"{BASE}/secure/useravatar?ownerId=JIRAUSER10100",
    },
    "displayName": "Jane Doe",
    "active": True,
    "deleted": False,
    "timeZone": "Europe/Berlin",
    "locale": "de_DE",
    "groups": {"size": 2, "items": [{"name": "jira-users"}, {"name": "staff"}]},
    "applicationRoles": {"size": 1, "items": []},
    "expand": "groups,applicationRoles",
}


class FakeJira:
    """Answers every request with ``handler`` and remembers the requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


@pytest.fixture
def connect() -> Iterator[Callable[..., tuple[JiraClient, FakeJira]]]:
    clients: list[JiraClient] = []

    def make(handler: Handler, **options: Any) -> tuple[JiraClient, FakeJira]:
        fake = FakeJira(handler)
        options.setdefault("username", None)
        options.setdefault("token", "pat-123")
        options.setdefault("flavor", "datacenter")
        client = JiraClient(base_url=BASE, transport=httpx.MockTransport(fake), **options)
        clients.append(client)
        return client, fake

    yield make
    for client in clients:
        client.close()


def answer(status: int, **kwargs: Any) -> Handler:
    return lambda request: httpx.Response(status, **kwargs)


def test_missing_user_is_user_not_found_naming_the_reference(connect: Any) -> None:
    client, _ = connect(answer(404, json={"errorMessages": ["User does not exist"]}))

    with pytest.raises(UserNotFound, match="username 'jdoe'"):
        client.fetch_user(JDOE)


def test_bad_request_is_jira_rejected_and_permanent(connect: Any) -> None:
    client, _ = connect(answer(400, json={"errorMessages": ["bad"]}))

    with pytest.raises(JiraRejected) as caught:
        client.fetch_user(JDOE)
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_an_auth_config_error(connect: Any, status: int) -> None:
    client, _ = connect(answer(status))

    with pytest.raises(JiraAuthError, match="ASSETSYNC_JIRA_TOKEN") as caught:
        client.fetch_user(JDOE)
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"Retry-After": "7"}, 7.0),
        (503, {"Retry-After": "30"}, 30.0),
        (503, {}, None),
        (500, {}, None),
        (409, {"Retry-After": "2"}, 2.0),
    ],
)
def test_overload_and_server_errors_are_unavailable_with_retry_after(
    connect: Any, status: int, headers: dict[str, str], wait: float | None
) -> None:
    client, _ = connect(answer(status, headers=headers))

    with pytest.raises(JiraUnavailable, match=f"Jira answered {status}") as caught:
        client.fetch_user(JDOE)
    assert caught.value.retry_after == wait
    assert isinstance(caught.value, TransientError)


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError, httpx.RemoteProtocolError],
)
def test_timeouts_and_network_errors_are_unavailable(
    connect: Any, error: type[httpx.TransportError]
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error("boom", request=request)

    client, _ = connect(fail)

    with pytest.raises(JiraUnavailable):
        client.fetch_user(JDOE)


def test_answer_that_is_not_json_is_unavailable(connect: Any) -> None:
    client, _ = connect(answer(200, text="<html>maintenance</html>"))

    with pytest.raises(JiraUnavailable, match="non-JSON"):
        client.fetch_user(JDOE)


def serves(server_info: dict[str, Any], user: dict[str, Any]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/rest/api/2/serverInfo":
            return httpx.Response(200, json=server_info)
        return httpx.Response(200, json=user)

    return handle


def test_auto_flavour_detects_cloud_and_uses_api_v3(connect: Any) -> None:
    cloud_user = {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Chris Cloud"}
    client, fake = connect(serves({"deploymentType": "Cloud"}, cloud_user), flavor="auto")

    user = client.fetch_user(UserRef("account_id", "5b10ac8d82e05b22cc7d4ef5"))
    client.fetch_user(UserRef("account_id", "5b10ac8d82e05b22cc7d4ef5"))

    assert client.flavor == "cloud"
    assert [r.url.path for r in fake.requests] == [
        "/rest/api/2/serverInfo",
        "/rest/api/3/user",
        "/rest/api/3/user",
    ]
    assert fake.requests[1].url.params["accountId"] == "5b10ac8d82e05b22cc7d4ef5"
    assert user.jira_id == "5b10ac8d82e05b22cc7d4ef5"
    assert user.name is None


def test_auto_flavour_detects_server_as_data_center(connect: Any) -> None:
    client, fake = connect(serves({"deploymentType": "Server"}, DC_USER), flavor="auto")

    client.fetch_user(JDOE)

    assert client.flavor == "datacenter"
    assert fake.requests[-1].url.path == "/rest/api/2/user"
    assert fake.requests[-1].url.params["username"] == "jdoe"


def test_with_username_requests_use_basic_auth(connect: Any) -> None:
    client, fake = connect(answer(200, json=DC_USER), username="sync-bot", token="api-tok")

    client.fetch_user(JDOE)

    expected = base64.b64encode(b"sync-bot:api-tok").decode()
    assert fake.requests[0].headers["Authorization"] == f"Basic {expected}"


def test_without_username_the_token_is_sent_as_bearer(connect: Any) -> None:
    client, fake = connect(answer(200, json=DC_USER), username=None, token="pat-123")

    client.fetch_user(JDOE)

    assert fake.requests[0].headers["Authorization"] == "Bearer pat-123"


@pytest.mark.parametrize("ref", [UserRef("username", "jdoe"), UserRef("user_key", "JIRAUSER1")])
def test_cloud_refuses_data_center_references_without_asking_jira(
    connect: Any, ref: UserRef
) -> None:
    client, fake = connect(answer(200, json={}), flavor="cloud")

    with pytest.raises(InvalidMessage, match=f"account_id, not {ref.kind}"):
        client.fetch_user(ref)
    assert fake.requests == []


def test_data_center_refuses_account_id_references(connect: Any) -> None:
    client, fake = connect(answer(200, json={}), flavor="datacenter")

    with pytest.raises(InvalidMessage, match="username or user_key"):
        client.fetch_user(UserRef("account_id", "5b10ac8d82e05b22cc7d4ef5"))
    assert fake.requests == []


def test_data_center_user_json_becomes_a_snapshot_with_groups(connect: Any) -> None:
    client, fake = connect(answer(200, json=DC_USER))

    user = client.fetch_user(UserRef("user_key", "JIRAUSER10100"), with_groups=True)

    assert fake.requests[0].url.params["key"] == "JIRAUSER10100"
    assert fake.requests[0].url.params["expand"] == "groups"
    assert user == JiraUser(
        jira_id="JIRAUSER10100",
        name="jdoe",
        key="JIRAUSER10100",
        display_name="Jane Doe",
        email_address="jane.doe@example.com",
        active=True,
        time_zone="Europe/Berlin",
        locale="de_DE",
        avatar_url=f"{BASE}/secure/useravatar?ownerId=JIRAUSER10100",
        groups=("jira-users", "staff"),
    )


def test_user_fetched_without_groups_has_unknown_groups(connect: Any) -> None:
    without_groups = {k: v for k, v in DC_USER.items() if k != "groups"}
    client, fake = connect(answer(200, json=without_groups))

    user = client.fetch_user(JDOE)

    assert "expand" not in fake.requests[0].url.params
    assert user.groups is None


def test_inactive_user_is_inactive(connect: Any) -> None:
    client, _ = connect(answer(200, json={**DC_USER, "active": False}))

    assert client.fetch_user(JDOE).active is False


def test_wrong_jira_url_is_a_configuration_error(connect: Any) -> None:
    client, _ = connect(answer(404, text="Not Found"), flavor="auto")

    with pytest.raises(ConfigError):
        client.check()


# ------------------------------------------------- the receiver's webhooks, same client


def settings_client(
    monkeypatch: pytest.MonkeyPatch, handler: Handler, **env: str
) -> tuple[JiraClient, FakeJira]:
    from worker.settings import load_settings

    for name, value in {
        "ASSETSYNC_JIRA_URL": BASE,
        "ASSETSYNC_JIRA_FLAVOR": "datacenter",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    fake = FakeJira(handler)
    client = JiraClient.from_settings(load_settings(), transport=httpx.MockTransport(fake))
    return client, fake


@pytest.mark.parametrize(
    ("username", "expected"),
    [("", "Bearer pat-123"), ("admin", "Basic " + base64.b64encode(b"admin:pat-123").decode())],
)
def test_webhook_requests_authenticate_as_user_requests_do(monkeypatch, username, expected):
    # 0.2.0's registration sent Bearer for an empty username and the worker Basic.
    def handle(request: httpx.Request) -> httpx.Response:
        return (
            httpx.Response(200, json=[]) if "webhooks" in request.url.path else httpx.Response(404)
        )

    client, fake = settings_client(
        monkeypatch,
        handle,
        ASSETSYNC_JIRA_USERNAME=username,
        ASSETSYNC_JIRA_TOKEN="pat-123",
    )

    assert client.webhooks() == []
    with pytest.raises(UserNotFound):
        client.fetch_user(JDOE)

    assert {r.headers["authorization"] for r in fake.requests} == {expected}
    assert [r.url.path for r in fake.requests] == ["/rest/webhooks/1.0/webhook", "/rest/api/2/user"]


def test_webhook_answers_are_bounded_like_every_jira_answer(monkeypatch):
    hooks = [
        {"name": f"hook {i}", "self": f"{BASE}/rest/webhooks/1.0/webhook/{i}"} for i in range(5000)
    ]
    client, _ = settings_client(
        monkeypatch, answer(200, json=hooks), ASSETSYNC_JIRA_MAX_RESPONSE_BYTES=str(64 * 1024)
    )

    with pytest.raises(JiraRejected, match="over the limit of 65536"):
        client.webhooks()


def test_webhook_errors_are_classified_by_status_never_by_jiras_localized_text(connect):
    localized = {"errorMessages": ["Le webhook n'est pas valide"], "errors": {"url": "invalide"}}
    client, _ = connect(answer(400, json=localized))

    with pytest.raises(JiraRejected) as caught:
        client.create_webhook({"name": "assetsync users"})

    assert str(caught.value) == "Jira answered 400 to POST /rest/webhooks/1.0/webhook"


def test_a_jira_without_the_webhook_resource_is_a_configuration_error(connect):
    client, _ = connect(answer(404))

    with pytest.raises(ConfigError, match=r"no webhook REST resource at .*is ASSETSYNC_JIRA_URL"):
        client.webhooks()


def test_a_non_administrator_managing_webhooks_is_told_what_the_account_lacks(connect):
    client, _ = connect(answer(403))

    with pytest.raises(JiraAuthError, match=r"may manage webhooks \(the Jira administrators"):
        client.webhooks()
