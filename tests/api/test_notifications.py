"""Twilio's Notifications resource (webhook errors and warnings) and the API's public base URL, in process:
a real SQLite store and API server driven by the twilio library."""

from __future__ import annotations

from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from switch.api.notifications import keep_notification
from switch.api.server import ApiServer
from switch.store import SQLiteStore
from tests.api.conftest import AC, TOKEN, Api, FakeService

UAS = "sip:uas@127.0.0.1:5099"
APP = "http://127.0.0.1:9/voice"


async def test_call_and_account_notifications_list_fetch_and_filter(api: Api) -> None:
    client = api.client()
    created = await api.run(client.calls.create, to=UAS, from_="+1555", url=APP)
    other = await api.run(client.calls.create, to=UAS, from_="+1556", url=APP)
    store = api.store
    keep_notification(store, AC, created.sid, 11200, "HTTP 500 from the application", APP, "POST")
    keep_notification(store, AC, created.sid, 12200, "schema warning", APP, "GET")
    keep_notification(store, AC, other.sid, 11205, "connection refused", "http://127.0.0.1:9/b", "POST")
    await store.flush()

    listed = await api.run(client.calls(created.sid).notifications.list)
    assert [(n.error_code, n.log, n.request_method) for n in listed] == [
        ("12200", "1", "GET"),
        ("11200", "0", "POST"),
    ]
    error = listed[1]
    assert error.sid.startswith("NO") and len(error.sid) == 34
    assert (error.call_sid, error.account_sid, error.request_url) == (created.sid, AC, APP)
    assert error.more_info == "https://www.twilio.com/docs/errors/11200"
    assert (
        "Msg=HTTP+500+from+the+application" in error.message_text and "ErrorCode=11200" in error.message_text
    )
    assert error.message_date is not None and error.message_date == error.date_created
    assert error.uri == f"/2010-04-01/Accounts/{AC}/Calls/{created.sid}/Notifications/{error.sid}.json"

    errors_only = await api.run(client.calls(created.sid).notifications.list, log=0)
    assert [n.sid for n in errors_only] == [error.sid]
    fetched = await api.run(client.calls(created.sid).notifications(error.sid).fetch)
    assert (fetched.sid, fetched.error_code, fetched.request_url) == (error.sid, "11200", APP)

    everything = await api.run(client.notifications.list)
    assert [n.error_code for n in everything] == ["11205", "12200", "11200"]
    assert everything[0].uri == f"/2010-04-01/Accounts/{AC}/Notifications/{everything[0].sid}.json"
    one = await api.run(client.notifications(everything[0].sid).fetch)
    assert (one.call_sid, one.error_code) == (other.sid, "11205")
    paged = await api.run(client.notifications.list, page_size=2)
    assert [n.sid for n in paged] == [n.sid for n in everything]  # the library followed next_page_uri

    # Another call's notification is not this call's; unknown calls and sids are 404.
    for fetch in (
        client.calls(created.sid).notifications(everything[0].sid).fetch,
        client.notifications("NO" + "0" * 32).fetch,
    ):
        with pytest.raises(TwilioRestException) as raised:
            await api.run(fetch)
        assert (raised.value.code, raised.value.status) == (20404, 404)
    with pytest.raises(TwilioException, match="20404"):  # a list's error: the library's own exception
        await api.run(client.calls("CA" + "0" * 32).notifications.list)
    with pytest.raises(TwilioException, match="20001"):
        await api.run(client.notifications.list, log=7)


async def test_call_subresource_uri_of_notifications_answers(api: Api) -> None:
    client = api.client()
    created = await api.run(client.calls.create, to=UAS, from_="+1555", url=APP)
    uri = created.subresource_uris["notifications"]
    response = await api.run(client.request, "GET", api.base_url + uri)
    assert response.status_code == 200
    assert response.text.startswith("{") and '"notifications": []' in response.text


async def test_recording_url_starts_with_the_public_base_url(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "switch.db")
    await store.open()
    server = ApiServer(
        FakeService(),  # type: ignore[arg-type]
        store,
        account_sid=AC,
        auth_token=TOKEN,
        data_dir=tmp_path,
        host="127.0.0.1",
        port=0,
        public_base_url="https://switch.example:8443/",
    )
    await server.start()
    try:
        assert server.context.answers.base_url == "https://switch.example:8443"
    finally:
        await server.stop()
        await store.close()
