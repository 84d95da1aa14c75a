"""The X connector against a loopback fake of the X API, through the real tweepy client.

Nothing of the connector or tweepy is mocked: requests go over HTTP to
`tests.fakes.x_api.FakeXApi`, which records them so the tests can assert exactly
which calls were made (incremental `since_id`, pagination tokens, the hide body).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from connectors.base import (
    AccountPoll,
    AuthError,
    ConnectorError,
    MalformedPayloadError,
    PermissionDeniedError,
    RateLimitedError,
    TransientError,
    connector_class,
    validate_account_options,
)
from connectors.x import CONVERSATIONS, MENTIONS, OWN_POSTS, SETTINGS_AT, XConnector
from monitor.config import AccountConfig
from monitor.model import Audience, ItemKind, PollResult
from tests.fakes.x_api import BEARER, FORBIDDEN, RATE_LIMITED, FakeXApi, ts

NOW = ts("2026-11-20T12:00:00")
ME = "100"  # the school account's X user id
TOKEN_ENV = "PW_TEST_X_BEARER"
FAST = {"retry_wait_seconds": 0.001, "retry_max_wait_seconds": 0.005, "timeout_seconds": 2}
OAUTH_ENV = {
    "consumer_key_env": "PW_TEST_X_CK",
    "consumer_secret_env": "PW_TEST_X_CS",
    "access_token_env": "PW_TEST_X_AT",
    "access_token_secret_env": "PW_TEST_X_ATS",
}
ALL_SECRETS = [BEARER, "ck-secret-value-1", "cs-secret-value-2", "at-secret-value-3",
               "ats-secret-value-4"]


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv(TOKEN_ENV, BEARER)
    for env, value in zip(OAUTH_ENV.values(), ALL_SECRETS[1:], strict=True):
        monkeypatch.setenv(env, value)


@pytest.fixture
def api() -> Iterator[FakeXApi]:
    with FakeXApi() as fake:
        fake.add_user(ME, "grade5", "Grade 5 Central", protected=False, description="Our class",
                      location="Toronto", url="", pinned_tweet_id="900",
                      verified_type="none")
        fake.add_user("200", "sam", "Sam Parent")
        fake.add_user("201", "kim", "Kim Neighbour")
        yield fake


def account(api: FakeXApi, **overrides: Any) -> AccountConfig:
    data: dict[str, Any] = {
        "id": "grade5-x",
        "platform": "x",
        "handle": "grade5",
        "external_id": ME,
        "school": "central",
        "kind": "classroom",
        "owners": ["lee@central.example"],
        "credentials": {"bearer_token_env": TOKEN_ENV},
        "api_base_url": api.url,
        "options": dict(FAST),
    }
    data.update(overrides)
    return AccountConfig.model_validate(data)


def add_mentions(api: FakeXApi, first: int, count: int, author: str = "200") -> None:
    for i in range(first, first + count):
        api.add_tweet(str(i), author, f"@grade5 hello {i}", NOW - timedelta(minutes=count - i),
                      mentions=(ME,))


def fresh(**cursors: str) -> dict[str, str]:
    """Cursors of an account whose profile was just read, so only comments are polled."""
    return {SETTINGS_AT: NOW.isoformat(), **cursors}


def assert_no_secret(exc: BaseException) -> None:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, ConnectorError):
        texts.append(exc.reason)
    for text in texts:
        for secret in ALL_SECRETS:
            assert secret not in text


# -- registry and options -------------------------------------------------------------


def test_registered_with_options_and_required_credentials(api: FakeXApi) -> None:
    assert connector_class("x") is XConnector
    assert validate_account_options(account(api)) is None
    bad = account(api, options={"max_pagez": 3})
    assert validate_account_options(bad) == (("options", "max_pagez"), "unknown option")
    no_token = account(api, credentials={})
    assert validate_account_options(no_token) is not None


# -- mentions -------------------------------------------------------------------------


def test_mentions_paginate_across_pages_with_documented_parameters(api: FakeXApi) -> None:
    add_mentions(api, 1000, 250)
    result = XConnector().poll(account(api), fresh(), NOW)

    calls = api.requests_to(r"/2/users/100/mentions")
    assert [c.query.get("pagination_token") for c in calls] == [None, "100", "200"]
    first = calls[0].query
    assert first["max_results"] == "100"
    assert first["expansions"] == "author_id"
    assert set(first["tweet.fields"].split(",")) >= {
        "created_at", "conversation_id", "in_reply_to_user_id", "referenced_tweets", "entities"}
    assert "since_id" not in first and first["start_time"] == "2026-11-13T12:00:00Z"
    assert calls[0].headers["authorization"] == f"Bearer {BEARER}"
    assert len(result.items) == 250
    assert {i.kind for i in result.items} == {ItemKind.MENTION}
    assert result.new_cursors[MENTIONS] == "1249"


def test_author_comes_from_includes_users(api: FakeXApi) -> None:
    api.add_tweet("1500", "201", "@grade5 great photos", NOW - timedelta(hours=1),
                  mentions=(ME,))
    (item,) = XConnector().poll(account(api), fresh(), NOW).items

    assert item.platform == "x" and item.account_id == "grade5-x"
    assert item.external_id == "1500"
    assert (item.author.id, item.author.handle, item.author.display_name) == (
        "201", "kim", "Kim Neighbour")
    assert item.url == "https://x.com/kim/status/1500"
    assert item.created_at == NOW - timedelta(hours=1)
    assert item.text == "@grade5 great photos"
    assert item.raw["data"]["id"] == "1500"
    assert item.raw["includes"]["users"][0]["username"] == "kim"


def test_empty_result_returns_nothing_and_keeps_cursors(api: FakeXApi) -> None:
    result = XConnector().poll(account(api), fresh(**{MENTIONS: "1000"}), NOW)
    assert result.items == [] and result.new_cursors == {} and result.settings_snapshot is None
    assert api.requests_to(r"/2/users/100/mentions")[0].query["since_id"] == "1000"


def test_second_poll_is_incremental_and_returns_nothing_old(api: FakeXApi) -> None:
    add_mentions(api, 1000, 5)
    connector = XConnector()
    first = connector.poll(account(api), fresh(), NOW)
    stored = fresh(**first.new_cursors)
    api.requests.clear()
    api.add_tweet("1010", "201", "@grade5 new one", NOW, mentions=(ME,))

    second = connector.poll(account(api), stored, NOW + timedelta(minutes=5))

    assert [i.external_id for i in second.items] == ["1010"]
    assert api.requests_to(r"/2/users/100/mentions")[0].query["since_id"] == "1004"
    assert api.requests_to(r"/2/users/100/tweets")[0].query.get("since_id") is None
    assert second.new_cursors[MENTIONS] == "1010"


def test_restart_with_stored_cursors_resumes_without_duplicates(api: FakeXApi) -> None:
    api.add_tweet("2000", ME, "Our trip!", NOW - timedelta(hours=2))
    api.add_tweet("2001", "200", "Lovely", NOW - timedelta(hours=1), conversation_id="2000",
                  replied_to="2000", in_reply_to_user_id=ME)
    add_mentions(api, 1000, 3)
    stored: dict[str, str] = {}
    first = XConnector().poll(account(api), stored, NOW)
    stored.update(first.new_cursors)
    api.add_tweet("2002", "201", "Me too", NOW, conversation_id="2000", replied_to="2001")

    after_restart = XConnector().poll(account(api), stored, NOW + timedelta(minutes=5))

    seen_first = {i.external_id for i in first.items}
    assert seen_first == {"2000", "2001", "1000", "1001", "1002"}
    assert [i.external_id for i in after_restart.items] == ["2002"]
    search = api.requests_to(r"/2/tweets/search/recent")
    assert search[-1].query["since_id"] == "2001"


# -- replies in the account's threads --------------------------------------------------


def test_replies_and_own_replies_in_threads(api: FakeXApi) -> None:
    api.add_tweet("2000", ME, "Field trip today", NOW - timedelta(hours=3))
    api.add_tweet("2001", "200", "@grade5 so fun", NOW - timedelta(hours=2),
                  conversation_id="2000", replied_to="2000", in_reply_to_user_id=ME,
                  mentions=(ME,))
    api.add_tweet("2002", ME, "@sam thanks!", NOW - timedelta(hours=1), conversation_id="2000",
                  replied_to="2001", in_reply_to_user_id="200")
    result = XConnector().poll(account(api), fresh(), NOW)

    kinds = {i.external_id: (i.kind, i.parent_id) for i in result.items}
    assert kinds == {
        "2000": (ItemKind.OWN_POST, None),
        "2001": (ItemKind.REPLY, "2000"),  # also a mention, classified once as a reply
        "2002": (ItemKind.OWN_POST, "2001"),
    }
    (search,) = api.requests_to(r"/2/tweets/search/recent")
    assert search.query["query"] == "conversation_id:2000"
    assert search.query["since_id"] == "2000"
    watch = json.loads(result.new_cursors[CONVERSATIONS])
    assert watch["2000"][:2] == ["2002", (NOW - timedelta(hours=3)).isoformat()]
    assert result.new_cursors[OWN_POSTS] == "2002"


def test_conversation_watch_expires_after_seven_days(api: FakeXApi) -> None:
    api.add_tweet("2000", ME, "Old post", NOW - timedelta(days=1))
    connector = XConnector()
    stored = fresh(**connector.poll(account(api), fresh(), NOW).new_cursors)
    assert "2000" in json.loads(stored[CONVERSATIONS])

    api.requests.clear()
    day6 = NOW + timedelta(days=5, hours=23)
    stored.update(connector.poll(account(api), {**stored, SETTINGS_AT: day6.isoformat()},
                                 day6).new_cursors)
    assert len(api.requests_to(r"/2/tweets/search/recent")) == 1

    api.requests.clear()
    day7 = NOW + timedelta(days=6)
    result = connector.poll(account(api), {**stored, SETTINGS_AT: day7.isoformat()}, day7)
    assert api.requests_to(r"/2/tweets/search/recent") == []
    assert json.loads(result.new_cursors[CONVERSATIONS]) == {}


def test_posts_older_than_the_search_window_are_not_watched(api: FakeXApi) -> None:
    api.add_tweet("1900", ME, "Ancient", NOW - timedelta(days=8))
    result = XConnector().poll(account(api), fresh(**{OWN_POSTS: "1"}), NOW)
    assert [i.external_id for i in result.items] == ["1900"]
    assert CONVERSATIONS not in result.new_cursors
    assert api.requests_to(r"/2/tweets/search/recent") == []


def test_watch_is_bounded(api: FakeXApi) -> None:
    for n in range(5):
        api.add_tweet(str(3000 + n), ME, f"post {n}", NOW - timedelta(hours=5 - n))
    opts = {**FAST, "max_conversations": 3}
    result = XConnector().poll(account(api, options=opts), fresh(), NOW)
    assert sorted(json.loads(result.new_cursors[CONVERSATIONS])) == ["3002", "3003", "3004"]


def test_unreadable_watch_cursor_is_rebuilt_from_a_week_of_own_posts(api: FakeXApi) -> None:
    api.add_tweet("2000", ME, "Post", NOW - timedelta(days=2))
    cursors = fresh(**{CONVERSATIONS: "{not json", OWN_POSTS: "2000"})
    result = XConnector().poll(account(api), cursors, NOW)
    assert "2000" in json.loads(result.new_cursors[CONVERSATIONS])
    assert result.warnings


# -- settings -------------------------------------------------------------------------


def test_settings_snapshot_on_its_own_interval(api: FakeXApi) -> None:
    connector = XConnector()
    acct = account(api, settings_interval="1h")
    first = connector.poll(acct, {}, NOW)
    snap = first.settings_snapshot
    assert snap is not None and snap.audience is Audience.PUBLIC
    assert snap.fields["protected"] is False
    assert snap.fields["verified_type"] == "none" and snap.fields["pinned_tweet_id"] == "900"
    (lookup,) = api.requests_to(r"/2/users/100")
    assert set(lookup.query["user.fields"].split(",")) == {
        "protected", "name", "description", "location", "url", "pinned_tweet_id",
        "verified_type"}
    assert first.new_cursors[SETTINGS_AT] == NOW.isoformat()

    half_hour = connector.poll(acct, first.new_cursors, NOW + timedelta(minutes=30))
    assert half_hour.settings_snapshot is None and SETTINGS_AT not in half_hour.new_cursors
    assert len(api.requests_to(r"/2/users/100")) == 1

    api.users[ME]["protected"] = True
    later = connector.poll(acct, first.new_cursors, NOW + timedelta(minutes=61))
    assert later.settings_snapshot is not None
    assert later.settings_snapshot.audience is Audience.PRIVATE


def test_unknown_user_is_a_clear_error(api: FakeXApi) -> None:
    with pytest.raises(ConnectorError, match="no user 999"):
        XConnector().poll(account(api, external_id="999"), {}, NOW)


# -- errors ---------------------------------------------------------------------------


def test_429_with_reset_header_blocks_the_app_until_reset(api: FakeXApi) -> None:
    reset = int(time.time()) + 120
    api.fault("GET", r"/2/users/100/mentions", status=429, body=RATE_LIMITED,
              headers={"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"})
    connector = XConnector()
    with pytest.raises(RateLimitedError) as caught:
        connector.poll(account(api), fresh(), NOW)
    assert caught.value.retry_after is not None and 110 <= caught.value.retry_after <= 121
    assert_no_secret(caught.value)

    # another account on the same app token waits without sending anything
    api.requests.clear()
    with pytest.raises(RateLimitedError):
        connector.poll(account(api, id="other-x"), fresh(), NOW)
    assert api.requests_to(r"/2/users/100/mentions") == []


def test_429_without_reset_header_backs_off_instead_of_spinning(api: FakeXApi) -> None:
    api.fault("GET", r"/2/users/100/mentions", status=429, body={
        "errors": [{"code": 88, "message": "Rate limit exceeded"}]}, times=100)
    with pytest.raises(RateLimitedError) as caught:
        XConnector().poll(account(api), fresh(), NOW)
    assert caught.value.retry_after == pytest.approx(900, abs=2)
    assert len(api.requests_to(r"/2/users/100/mentions")) == 1


def test_a_limited_app_does_not_stop_accounts_on_another_token(
    api: FakeXApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_token = "BBBBother-app-token-000000000000000000"
    api.bearers.add(other_token)
    monkeypatch.setenv("PW_TEST_X_OTHER", other_token)
    add_mentions(api, 1000, 2)
    api.fault("GET", r"/2/users/100/mentions", status=429, body=RATE_LIMITED)
    connector = XConnector()
    polls = [
        AccountPoll(account(api, id="a-x"), fresh()),
        AccountPoll(account(api, id="b-x", credentials={"bearer_token_env": "PW_TEST_X_OTHER"}),
                    fresh()),
    ]
    results = connector.poll_many(polls, NOW)
    # the fault hits whichever request comes first; exactly one app is limited
    limited = [k for k, r in results.items() if isinstance(r, RateLimitedError)]
    fine = [k for k, r in results.items() if isinstance(r, PollResult)]
    assert len(limited) == 1 and len(fine) == 1
    assert len(results[fine[0]].items) == 2  # type: ignore[union-attr]


def test_rate_limit_cut_keeps_finished_streams(api: FakeXApi) -> None:
    api.add_tweet("2000", ME, "Post", NOW - timedelta(hours=1))
    add_mentions(api, 1000, 2)
    api.fault("GET", r"/2/tweets/search/recent", status=429, body=RATE_LIMITED,
              headers={"x-rate-limit-reset": str(int(time.time()) + 60)})
    result = XConnector().poll(account(api), {}, NOW)
    assert result.settings_snapshot is not None
    assert {i.external_id for i in result.items} == {"2000", "1000", "1001"}
    assert result.new_cursors[MENTIONS] == "1001" and result.new_cursors[OWN_POSTS] == "2000"
    watch = json.loads(result.new_cursors[CONVERSATIONS])
    assert watch["2000"][0] == "2000"  # searched again next time, from the start
    assert any("rate limit" in w for w in result.warnings)


def test_low_remaining_quota_slows_down_before_a_429(api: FakeXApi) -> None:
    add_mentions(api, 1000, 150)
    api.rate_headers = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "1",
                        "x-rate-limit-reset": str(int(time.time()) + 300)}
    with pytest.raises(RateLimitedError) as caught:
        XConnector().poll(account(api), fresh(), NOW)
    assert len(api.requests_to(r"/2/users/100/mentions")) == 1
    assert caught.value.retry_after is not None and caught.value.retry_after > 250


def test_server_error_then_success_is_retried(api: FakeXApi) -> None:
    add_mentions(api, 1000, 1)
    api.fault("GET", r"/2/users/100/mentions", status=503,
              body={"title": "Service Unavailable", "detail": "Service Unavailable"}, times=2)
    result = XConnector().poll(account(api), fresh(), NOW)
    assert [i.external_id for i in result.items] == ["1000"]
    assert len(api.requests_to(r"/2/users/100/mentions")) == 3


def test_persistent_server_error_becomes_transient_after_bounded_retries(api: FakeXApi) -> None:
    api.fault("GET", r"/2/users/100/mentions", status=500, body={"title": "Internal Error"},
              times=10)
    with pytest.raises(TransientError) as caught:
        XConnector().poll(account(api), fresh(), NOW)
    assert len(api.requests_to(r"/2/users/100/mentions")) == 3
    assert_no_secret(caught.value)


def test_401_is_an_auth_error_without_the_token(api: FakeXApi) -> None:
    api.bearers.clear()
    with pytest.raises(AuthError) as caught:
        XConnector().poll(account(api), fresh(), NOW)
    assert "401" in caught.value.reason and "renew" in caught.value.reason
    assert_no_secret(caught.value)


def test_403_client_not_enrolled_is_a_permission_problem(api: FakeXApi) -> None:
    api.fault("GET", r"/2/users/100/mentions", status=403, body=FORBIDDEN)
    with pytest.raises(PermissionDeniedError) as caught:
        XConnector().poll(account(api), fresh(), NOW)
    assert "Client Forbidden" in caught.value.reason
    assert_no_secret(caught.value)


def test_403_with_invalid_token_code_is_an_auth_error(api: FakeXApi) -> None:
    api.fault("GET", r"/2/users/100/mentions", status=403,
              body={"errors": [{"code": 89, "message": "Invalid or expired token."}]})
    with pytest.raises(AuthError) as caught:
        XConnector().poll(account(api), fresh(), NOW)
    assert_no_secret(caught.value)


def test_missing_token_variable_is_an_auth_error(api: FakeXApi,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(AuthError, match=TOKEN_ENV):
        XConnector().poll(account(api), fresh(), NOW)
    assert api.requests == []


@pytest.mark.parametrize("body", [b"{not json", b"<html>oops</html>", b"[1, 2]",
                                  b'{"data": {"id": "1"}, "meta": {}}'])
def test_malformed_payload_is_reported_not_crashed(api: FakeXApi, body: bytes) -> None:
    api.fault("GET", r"/2/users/100/mentions", status=200, body=body)
    with pytest.raises(MalformedPayloadError):
        XConnector().poll(account(api), fresh(), NOW)


def test_slow_account_costs_only_its_own_timeout(api: FakeXApi) -> None:
    add_mentions(api, 1000, 1)
    slow_opts = {**FAST, "timeout_seconds": 0.2, "retry_attempts": 2}
    api.fault("GET", r"/2/users/300/tweets", status=200, body={}, delay=1.0, times=2)
    polls = [
        AccountPoll(account(api, id="slow-x", external_id="300", options=slow_opts), fresh()),
        AccountPoll(account(api), fresh()),
    ]
    started = time.monotonic()
    results = XConnector().poll_many(polls, NOW)
    assert isinstance(results["slow-x"], TransientError)
    assert "within 0.2s" in results["slow-x"].reason
    assert isinstance(results["grade5-x"], PollResult)
    assert time.monotonic() - started < 1.5


# -- base URL -------------------------------------------------------------------------


def test_requests_go_to_the_configured_base_url(api: FakeXApi) -> None:
    XConnector().poll(account(api), {}, NOW)
    paths = {r.path for r in api.requests}
    assert paths == {"/2/users/100", "/2/users/100/tweets", "/2/users/100/mentions"}


def test_default_base_url_is_api_x_com(api: FakeXApi, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def refuse(self: Any, request: requests.PreparedRequest, **kwargs: Any) -> None:
        sent.append(str(request.url))
        raise requests.ConnectionError("refused by the test: nothing leaves this machine")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", refuse)
    acct = account(api, api_base_url=None, options={**FAST, "retry_attempts": 1})
    with pytest.raises(TransientError):
        XConnector().poll(acct, {}, NOW)
    assert sent and sent[0].startswith("https://api.x.com/2/users/100?")
    assert api.requests == []


# -- hide -----------------------------------------------------------------------------


def test_hide_reply_puts_hidden_true_with_user_context(api: FakeXApi) -> None:
    acct = account(api, moderation="hide",
                   credentials={"bearer_token_env": TOKEN_ENV, **OAUTH_ENV})
    XConnector().hide(acct, "2001")
    (put,) = api.requests_to(r"/2/tweets/2001/hidden", method="PUT")
    assert json.loads(put.body) == {"hidden": True}
    assert put.headers["authorization"].startswith("OAuth ")
    assert "ck-secret-value-1" in put.headers["authorization"]  # consumer key is public in OAuth
    assert api.hidden == {"2001": True}


def test_hide_needs_oauth1_credentials_and_moderation(api: FakeXApi) -> None:
    with pytest.raises(ConnectorError, match="consumer_key_env"):
        XConnector().hide(account(api, moderation="hide"), "2001")
    with pytest.raises(ConnectorError, match="moderation"):
        XConnector().hide(account(api), "2001")
    assert api.requests == []


def test_hide_forbidden_outside_own_thread(api: FakeXApi) -> None:
    api.fault("PUT", r"/2/tweets/2001/hidden", status=403, body={
        "title": "Forbidden", "type": "about:blank", "status": 403,
        "detail": "You are not allowed to hide replies to this Tweet."})
    acct = account(api, moderation="hide",
                   credentials={"bearer_token_env": TOKEN_ENV, **OAUTH_ENV})
    with pytest.raises(PermissionDeniedError) as caught:
        XConnector().hide(acct, "2001")
    assert_no_secret(caught.value)


def test_a_rejected_thread_search_drops_that_thread_only(api: FakeXApi) -> None:
    api.add_tweet("2000", ME, "Post", NOW - timedelta(hours=2))
    api.add_tweet("2100", ME, "Other post", NOW - timedelta(hours=1))
    api.add_tweet("2101", "200", "Reply", NOW, conversation_id="2100", replied_to="2100")
    api.fault("GET", r"/2/tweets/search/recent", status=400, body={
        "errors": [{"parameters": {"since_id": ["2000"]},
                    "message": "Invalid 'since_id':'2000'. 'since_id' must be a tweet id "
                               "created after 2026-11-13T12:00Z"}],
        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request"})
    result = XConnector().poll(account(api), fresh(), NOW)
    # threads are searched least recently checked first, then by id: 2000 is rejected
    assert "2101" in {i.external_id for i in result.items}
    assert list(json.loads(result.new_cursors[CONVERSATIONS])) == ["2100"]
    assert any("stopped watching" in w for w in result.warnings)


def test_unreadable_watch_is_not_overwritten_before_it_is_rebuilt(api: FakeXApi) -> None:
    api.fault("GET", r"/2/users/100/tweets", status=429, body=RATE_LIMITED)
    with pytest.raises(RateLimitedError):
        XConnector().poll(account(api), fresh(**{CONVERSATIONS: "[]]", OWN_POSTS: "5"}), NOW)
