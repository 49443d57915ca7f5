"""Sign in with Jira against the fake Jira over HTTP: who may get in, on Data Center and
Cloud (v3), and one sentence for each refusal."""

from __future__ import annotations

import pytest

from console.sign_in import SignInRefused, check_administrator


def sign_in(jira, flavor: str, username: str, secret: str):
    return check_administrator(
        base_url=jira.url, flavor=flavor, username=username, secret=secret, timeout=5, verify=True
    )


def test_a_cloud_administrator_signs_in_with_e_mail_and_api_token_through_v3(cloud_jira):
    cloud_jira.accounts.add("ann@example.com", "api-token", administrator=True, display_name="Ann")
    cloud_jira.accounts.add("bob@example.com", "api-token", administrator=False, display_name="Bob")

    admin = sign_in(cloud_jira, "cloud", "ann@example.com", "api-token")

    assert (admin.user, admin.display_name) == ("ann@example.com", "Ann")
    asked = [path for _, path in cloud_jira.request_log]
    assert asked == ["/rest/api/3/myself", "/rest/api/3/mypermissions?permissions=ADMINISTER"]
    with pytest.raises(
        SignInRefused, match=r"^Bob \(bob@example.com\) is not a Jira administrator"
    ):
        sign_in(cloud_jira, "cloud", "bob@example.com", "api-token")
    with pytest.raises(SignInRefused, match="did not accept that e-mail address and API token"):
        sign_in(cloud_jira, "cloud", "ann@example.com", "wrong")


def test_a_data_center_personal_access_token_needs_no_username(jira):
    jira.accounts.add("ann", "pat-of-ann", administrator=True, display_name="Ann Admin")
    assert sign_in(jira, "datacenter", "", "pat-of-ann").user == "ann"


def test_jira_unreachable_says_so(jira):
    url = jira.url
    jira.stop()
    with pytest.raises(
        SignInRefused, match=r"^Jira cannot be reached now \(.*\); try again later\."
    ):
        check_administrator(
            base_url=url, flavor="datacenter", username="ann", secret="x", timeout=2, verify=True
        )
