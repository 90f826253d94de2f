"""UiServer against a fake kiosk and panel, through aiohttp's test client:
screens in, actions out, garbage answered, loopback enforced, /sim only in
simulate mode."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atm import texts
from atm.ui.server import MAX_ACTION_BYTES, STATIC_DIR, PanelRequestError, UiServer, parse_panel_request


async def _client(kiosk, panel=None) -> TestClient:
    client = TestClient(TestServer(UiServer(kiosk, panel).make_app(), host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def client(fake_kiosk):
    client = await _client(fake_kiosk)
    yield client
    await client.close()


@pytest.fixture
async def sim_client(fake_kiosk, fake_panel):
    client = await _client(fake_kiosk, fake_panel)
    yield client
    await client.close()


async def _receive(ws, timeout: float = 5.0) -> dict:
    return json.loads(await ws.receive_str(timeout=timeout))


async def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


# -- screens ----------------------------------------------------------------

async def test_new_connection_receives_the_current_screen_first(client, fake_kiosk):
    fake_kiosk.show("insert_cash", {"inserted": "20.00 EUR", "inserted_minor": 2000})
    async with client.ws_connect("/ws") as ws:
        first = await _receive(ws)
    assert first == fake_kiosk.current
    assert first["screen"] == "insert_cash" and first["data"]["inserted_minor"] == 2000


async def test_screens_published_after_connect_are_pushed_in_order(client, fake_kiosk):
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        fake_kiosk.show("scan_address", {"error": None, "network": "regtest"})
        fake_kiosk.show("scan_address", {"error": "Not a regtest address", "network": "regtest"})
        second, third = await _receive(ws), await _receive(ws)
    assert (second["seq"], second["data"]["error"]) == (2, None)
    assert (third["seq"], third["data"]["error"]) == (3, "Not a regtest address")


async def test_a_screen_queued_before_the_snapshot_is_not_sent_twice(client, fake_kiosk):
    original_snapshot = fake_kiosk.snapshot

    def snapshot_after_a_change():
        # The kiosk moves on between subscribe() and snapshot(): the queue holds
        # the same screen the snapshot already shows.
        fake_kiosk.snapshot = original_snapshot
        fake_kiosk.show("booting", {})
        return original_snapshot()

    fake_kiosk.snapshot = snapshot_after_a_change
    async with client.ws_connect("/ws") as ws:
        first = await _receive(ws)
        fake_kiosk.show("idle", {"buy_enabled": True})
        second = await _receive(ws)
    assert [first["screen"], second["screen"]] == ["booting", "idle"]
    assert second["seq"] == first["seq"] + 1


@pytest.mark.parametrize("bad_data", [{"rate": float("nan")}, "circular"])
async def test_a_screen_that_cannot_be_json_is_skipped_and_the_next_one_arrives(client, fake_kiosk, bad_data):
    if bad_data == "circular":
        bad_data = {}
        bad_data["self"] = bad_data
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        fake_kiosk.seq += 1
        fake_kiosk.current = {"screen": "idle", "data": bad_data, "seq": fake_kiosk.seq}
        for queue in fake_kiosk.queues:
            queue.put_nowait(fake_kiosk.current)
        fake_kiosk.show("out_of_service", {"reason": "after the bad one"})
        received = await _receive(ws)
    assert received["data"] == {"reason": "after the bad one"}


async def test_a_broken_screen_feed_closes_the_socket_so_the_page_reconnects(client, fake_kiosk):
    class BrokenQueue(asyncio.Queue):
        async def get(self):
            await super().get()
            raise RuntimeError("kiosk bug")

    fake_kiosk.subscribe = lambda: fake_kiosk.queues.append(BrokenQueue()) or fake_kiosk.queues[-1]
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        fake_kiosk.show("booting", {})
        closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1011
    await _wait_until(lambda: not fake_kiosk.queues)


async def test_api_screen_reports_a_screen_that_cannot_be_json(client, fake_kiosk):
    fake_kiosk.show("idle", {"rate": float("inf")})
    response = await client.get("/api/screen")
    assert response.status == 500
    assert "cannot be written as JSON" in (await response.json())["error"]


async def test_closing_the_websocket_unsubscribes_from_the_kiosk(client, fake_kiosk):
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        assert len(fake_kiosk.queues) == 1
    await _wait_until(lambda: not fake_kiosk.queues)


async def test_api_screen_returns_the_snapshot_as_json(client, fake_kiosk):
    fake_kiosk.show("out_of_service", {"kind": "fault"})
    response = await client.get("/api/screen")
    assert response.status == 200
    assert await response.json() == {**fake_kiosk.current, "texts": {}}


async def test_api_screen_adds_the_words_of_every_message_in_the_screens_language(client, fake_kiosk):
    fake_kiosk.show("insert_cash", {"language": "de", "message": texts.message("message.note_received", amount="5.00 EUR")})
    body = await (await client.get("/api/screen")).json()
    assert body["texts"] == {"message": "5.00 EUR erhalten. Danke."}


async def test_the_texts_of_a_language_are_served_and_an_unknown_one_is_refused(client):
    response = await client.get("/texts/fr.json")
    assert response.status == 200 and (await response.json())["screen"]["buy"] == texts.text("fr", "screen.buy")
    response = await client.get("/texts/xx.json")
    assert response.status == 404 and "xx" in (await response.json())["error"]


async def test_a_refusal_carries_the_kiosks_message_key_to_the_page(client, fake_kiosk):
    fake_kiosk.reply = {"ok": False, "error": "finish refused", "message": texts.message("message.insert_first")}
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        await ws.send_str(json.dumps({"action": "finish_cash", "id": 3}))
        reply = await _receive(ws)
    assert reply == {"reply_to": 3, "ok": False, "error": "finish refused",
                     "message": {"key": "message.insert_first", "values": {}}}


# -- actions ----------------------------------------------------------------

async def test_an_action_reaches_the_kiosk_and_is_answered_with_its_id(client, fake_kiosk):
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        await ws.send_str(json.dumps({"action": "service_login", "id": 7, "pin": "1234"}))
        reply = await _receive(ws)
    assert reply == {"reply_to": 7, "ok": True, "error": None}
    assert fake_kiosk.actions == [{"action": "service_login", "id": 7, "pin": "1234"}]


async def test_a_refused_action_is_answered_with_the_kiosks_reason(client, fake_kiosk):
    fake_kiosk.reply = {"ok": False, "error": "finish_cash is not possible on the idle screen"}
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        await ws.send_str(json.dumps({"action": "finish_cash", "id": 3}))
        reply = await _receive(ws)
    assert reply == {"reply_to": 3, "ok": False, "error": "finish_cash is not possible on the idle screen"}


async def test_a_kiosk_that_raises_on_an_action_gets_an_error_reply_not_a_dead_socket(client, fake_kiosk):
    fake_kiosk.raise_on_action = RuntimeError("boom")
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        await ws.send_str(json.dumps({"action": "confirm", "id": 1}))
        reply = await _receive(ws)
        assert reply["reply_to"] == 1 and reply["ok"] is False and "confirm" in reply["error"]
        fake_kiosk.raise_on_action = None
        await ws.send_str(json.dumps({"action": "confirm", "id": 2}))
        assert (await _receive(ws))["ok"] is True


@pytest.mark.parametrize("message, expected_words", [
    ("this is not json", "not JSON"),
    ("[1, 2, 3]", "JSON object"),
    ("42", "JSON object"),
    ('"start_buy"', "JSON object"),
    ('{"action": "start_buy"}', "integer 'id'"),
    ('{"action": "start_buy", "id": true}', "integer 'id'"),
    ('{"action": "start_buy", "id": "1"}', "integer 'id'"),
    ('{"id": 5}', "'action'"),
    ('{"id": 5, "action": ""}', "'action'"),
    ('{"id": 5, "action": ["start_buy"]}', "'action'"),
    ("[" * 5000 + "]" * 5000, "not usable JSON"),
    (json.dumps({"action": "start_buy", "id": 9, "pad": "x" * (MAX_ACTION_BYTES + 1)}), "at most"),
])
async def test_malformed_messages_get_an_error_reply_and_the_connection_stays_up(
        client, fake_kiosk, message, expected_words):
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        await ws.send_str(message)
        reply = await _receive(ws)
        assert reply["ok"] is False
        assert expected_words in reply["error"]
        assert fake_kiosk.actions == []
        # Same connection, next message works.
        await ws.send_str(json.dumps({"action": "start_buy", "id": 10}))
        assert await _receive(ws) == {"reply_to": 10, "ok": True, "error": None}


async def test_a_refused_action_with_an_id_is_answered_to_that_id(client):
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        await ws.send_str('{"id": 12, "action": 5}')
        assert (await _receive(ws))["reply_to"] == 12


async def test_a_binary_message_gets_an_error_reply(client, fake_kiosk):
    async with client.ws_connect("/ws") as ws:
        await _receive(ws)
        await ws.send_bytes(b"\x00\x01garbage")
        reply = await _receive(ws)
        assert reply["ok"] is False and "binary" in reply["error"]
        await ws.send_str(json.dumps({"action": "cancel", "id": 1}))
        assert (await _receive(ws))["ok"] is True
    assert fake_kiosk.actions == [{"action": "cancel", "id": 1}]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200), _json_values.map(json.dumps),
                      st.dictionaries(st.sampled_from(["action", "id", "pin", "do"]), _json_values)
                      .map(json.dumps)))
def test_any_text_from_the_page_gets_exactly_one_well_formed_reply(text):
    kiosk_answer = {"ok": True}

    class Kiosk:
        async def handle_action(self, message):
            return kiosk_answer

    reply = asyncio.run(UiServer(Kiosk()).answer_message(text))
    assert set(reply) == {"reply_to", "ok", "error"}
    assert isinstance(reply["ok"], bool)
    if reply["ok"]:
        parsed = json.loads(text)
        assert isinstance(parsed["action"], str) and parsed["action"]
        assert isinstance(parsed["id"], int) and not isinstance(parsed["id"], bool)
        assert reply["reply_to"] == parsed["id"] and reply["error"] is None
    else:
        assert isinstance(reply["error"], str) and reply["error"]


# -- loopback only ------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "10.0.0.1", "::", "kiosk.example.com", ""])
def test_a_host_that_is_not_loopback_is_refused_by_name(fake_kiosk, host):
    with pytest.raises(ValueError, match=re.escape(repr(host))):
        UiServer(fake_kiosk, host=host)


def test_the_ipv6_loopback_is_accepted(fake_kiosk):
    # Not bound here: CI containers often have IPv6 switched off.
    assert UiServer(fake_kiosk, host="::1").url is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost"])
async def test_loopback_hosts_serve_the_customer_screen(fake_kiosk, host):
    server = UiServer(fake_kiosk, host=host, port=0)
    url = await server.start()
    try:
        assert url == server.url
        assert re.fullmatch(r"http://127\.0\.0\.[12]:\d+/", url)
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                assert response.status == 200
                assert '<script src="/static/app.js">' in await response.text()
    finally:
        await server.stop()


async def test_after_stop_the_port_no_longer_answers(fake_kiosk):
    server = UiServer(fake_kiosk)
    url = await server.start()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "ws") as ws:
            await ws.receive_str(timeout=5)
            await server.stop()
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url)


async def test_a_port_already_in_use_is_reported_with_the_address(fake_kiosk):
    first = UiServer(fake_kiosk)
    url = await first.start()
    port = int(url.rsplit(":", 1)[1].strip("/"))
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            await UiServer(fake_kiosk, port=port).start()
    finally:
        await first.stop()


@pytest.mark.parametrize("header, value", [("Host", "evil.example:8080"), ("Origin", "http://evil.example"),
                                           ("Origin", "http://127.0.0.1:1"), ("Origin", "null")])
async def test_requests_for_a_foreign_name_or_from_a_foreign_page_are_refused(client, header, value):
    # A DNS-rebinding page, another local service's page, or a sandboxed or
    # file:// page in the kiosk browser would send exactly these.
    response = await client.get("/api/screen", headers={header: value})
    assert response.status == 403
    assert value in (await response.json())["error"]
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/ws", headers={header: value})


async def test_the_page_from_the_kiosk_itself_is_accepted(client):
    response = await client.get("/api/screen", headers={"Origin": str(client.make_url("/")).rstrip("/")})
    assert response.status == 200


# -- static files -------------------------------------------------------------

async def test_customer_screen_assets_are_served(client):
    for path in ("/", "/static/app.js", "/static/style.css"):
        response = await client.get(path)
        assert response.status == 200, path


async def test_pages_forbid_loading_anything_from_elsewhere(client):
    for path in ("/", "/static/app.js", "/api/screen"):
        headers = (await client.get(path)).headers
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] in ("no-cache", "no-store")


def test_no_static_file_loads_anything_from_the_internet():
    # The kiosk has no internet: a CDN script or web font would leave a blank screen.
    external = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|https?://""")
    offenders = [f"{path.name}: {match.group(0)}"
                 for path in STATIC_DIR.iterdir()
                 for match in external.finditer(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_scripts_never_insert_html_from_data():
    # Addresses and messages can come from a scanned QR code: text only.
    for path in STATIC_DIR.glob("*.js"):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", source), path.name


# -- simulator control panel --------------------------------------------------

@pytest.mark.parametrize("method, path", [("GET", "/sim"), ("GET", "/sim/api"), ("POST", "/sim/api")])
async def test_the_control_panel_does_not_exist_without_a_panel(client, method, path):
    response = await client.request(method, path, json={"command": "insert_note", "args": {"minor": 500}})
    assert response.status == 404


async def test_the_control_panel_page_is_served_in_simulate_mode(sim_client):
    response = await sim_client.get("/sim")
    assert response.status == 200
    assert "/static/sim.js" in await response.text()


async def test_get_sim_api_lists_the_panel_commands_and_state(sim_client, fake_panel):
    body = await (await sim_client.get("/sim/api")).json()
    assert body == {"commands": fake_panel.commands(), "state": fake_panel.state()}


async def test_post_sim_api_runs_the_command_with_its_args(sim_client, fake_panel):
    response = await sim_client.post("/sim/api", json={"command": "insert_note", "args": {"minor": 2000}})
    assert response.status == 200
    assert await response.json() == {"ok": True}
    assert fake_panel.ran == [("insert_note", {"minor": 2000})]


async def test_post_sim_api_passes_on_the_panels_refusal(sim_client):
    response = await sim_client.post("/sim/api", json={"command": "fly", "args": {}})
    assert await response.json() == {"ok": False, "error": "unknown command 'fly'"}


@pytest.mark.parametrize("body, expected_words", [
    ("not json", "not JSON"),
    ("[]", "JSON object"),
    (b"\xff\xfe{}", "not UTF-8"),
    ('{"args": {}}', "'command'"),
    ('{"command": 3}', "'command'"),
    ('{"command": "jam", "args": [1]}', "'args'"),
])
async def test_post_sim_api_refuses_a_malformed_body_with_a_reason(sim_client, fake_panel, body, expected_words):
    response = await sim_client.post("/sim/api", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert expected_words in (await response.json())["error"]
    assert fake_panel.ran == []


async def test_post_sim_api_without_args_runs_the_command_with_none(sim_client, fake_panel):
    response = await sim_client.post("/sim/api", json={"command": "jam"})
    assert response.status == 200
    assert fake_panel.ran == [("jam", {})]


async def test_a_panel_command_that_raises_is_reported_and_the_server_keeps_serving(sim_client, fake_panel):
    fake_panel.fail_with = RuntimeError("simulated validator unplugged")
    response = await sim_client.post("/sim/api", json={"command": "jam", "args": {}})
    assert response.status == 500
    assert "simulated validator unplugged" in (await response.json())["error"]
    fake_panel.fail_with = None
    assert (await sim_client.post("/sim/api", json={"command": "jam", "args": {}})).status == 200


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=300), _json_values.map(lambda v: json.dumps(v).encode()),
                      st.dictionaries(st.sampled_from(["command", "args"]), _json_values)
                      .map(lambda v: json.dumps(v).encode()),
                      st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)))
def test_any_panel_request_body_parses_or_is_refused_with_the_typed_error(body):
    try:
        command, args = parse_panel_request(body)
    except PanelRequestError as exc:
        assert str(exc)
    else:
        assert isinstance(command, str) and command and isinstance(args, dict)


_json_trees = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_json_trees)
def test_any_screen_data_gets_its_texts_added_without_an_error(data):
    from atm.ui.server import with_texts
    result = with_texts({"screen": "x", "data": data, "seq": 1})
    assert isinstance(result, dict) and isinstance(result.get("texts", {}), dict)
