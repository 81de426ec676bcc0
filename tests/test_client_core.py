"""clients/core.py, the realtime protocol without I/O: frames, hello, session state,
requests, close codes. Pure and fast: no engine runs, no socket opens. The engine's own
codec and parser check that what the core builds is what the engine reads, and the
reverse."""

from __future__ import annotations

import ast
import random
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest

from clients.core import (
    CODECS,
    JSON,
    MSGPACK,
    Requests,
    Session,
    close_code,
    hello,
    is_refusal,
    offset_key,
    retry_after_s,
    retryable,
    shed_delay_s,
    should_reconnect,
    tick_seq,
)
from engine.core.settings import Limits
from engine.realtime.codec import SUBPROTOCOLS, Codec
from engine.realtime.protocol import CloseCode, Hello, parse_frame

ROOT = Path(__file__).resolve().parents[1]
MAX = Limits().max_frame_bytes


def tick(seq: int, offset: str, *ids: str, **fields: Any) -> dict[str, Any]:
    entries = [{"id": i, "kind": "comment", "ts": offset_key(i)[0], "text": i} for i in ids]
    return {"type": "tick", "seq": seq, "t": 1, "offset": offset, **fields} | (
        {"entries": entries} if entries else {}
    )


def welcome(seq: int, offset: str, *ids: str, recovered: bool | None = None) -> dict[str, Any]:
    history = [{"id": i, "kind": "comment", "ts": offset_key(i)[0]} for i in ids]
    frame: dict[str, Any] = {"type": "welcome", "seq": seq, "offset": offset, "history": history}
    if recovered is not None:
        frame["recovered"] = recovered
    return frame


# ---- codecs ---------------------------------------------------------------------------------


def test_codecs_are_named_by_the_engines_subprotocols() -> None:
    assert (JSON.subprotocol, MSGPACK.subprotocol) == SUBPROTOCOLS
    assert (JSON.subprotocol, MSGPACK.subprotocol) == (
        Codec.JSON.subprotocol,
        Codec.MSGPACK.subprotocol,
    )
    assert CODECS == {"json": JSON, "msgpack": MSGPACK}
    assert (JSON.binary, MSGPACK.binary) == (not Codec.JSON.text, not Codec.MSGPACK.text)


def test_json_frames_are_text_and_msgpack_frames_binary() -> None:
    message = {"type": "comment", "text": "héllo 👋", "id": "r1"}
    text, binary = JSON.encode(message), MSGPACK.encode(message)
    assert isinstance(text, str)
    assert isinstance(binary, bytes)
    assert text == orjson.dumps(message).decode()
    assert binary == msgpack.packb(message, use_bin_type=True)
    assert JSON.decode(text) == JSON.decode(text.encode()) == message
    assert MSGPACK.decode(binary) == message


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_what_the_engine_sends_the_core_reads_and_the_reverse(name: str) -> None:
    core, engine = CODECS[name], Codec.JSON if name == "json" else Codec.MSGPACK
    pushed = {"type": "tick", "seq": 7, "t": 1, "offset": "5-1", "stats": {"online": 3}}
    assert core.decode(engine.encode(pushed)) == pushed
    frame = core.encode(hello("tok", since="5-1", device="dev-12345", ref="r.x"))
    parsed = parse_frame(frame, engine, Limits())
    assert parsed == Hello(token="tok", since="5-1", device="dev-12345", ref="r.x")


def test_hello_frames_match_the_protocols_examples() -> None:
    """docs/protocol.md § hello: the JSON text and msgpack hex of the examples."""
    cases = [
        (hello(), '{"type":"hello"}', "81a474797065a568656c6c6f"),
        (
            hello(device="k3v9Qx7T2mWp"),
            '{"type":"hello","device":"k3v9Qx7T2mWp"}',
            "82a474797065a568656c6c6fa6646576696365ac6b33763951783754326d5770",
        ),
        (
            hello(since="1732212345678-0"),
            '{"type":"hello","since":"1732212345678-0"}',
            "82a474797065a568656c6c6fa573696e6365af313733323231323334353637382d30",
        ),
    ]
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    for message, text, packed in cases:
        assert (JSON.encode(message), MSGPACK.encode(message).hex()) == (text, packed)
        assert text in protocol
        assert packed in protocol


def test_hello_leaves_out_what_is_absent() -> None:
    assert hello(None, since=None, device="", ref=None) == {"type": "hello"}
    assert hello("t", since="1-0", device="d" * 8, ref="r") == {
        "type": "hello", "token": "t", "since": "1-0", "device": "d" * 8, "ref": "r",
    }  # fmt: skip


def test_tick_seq_reads_the_engines_ticks_without_decoding() -> None:
    for seq in (0, 5, 127, 128, 300, 70_000, 2**33):
        frame = Codec.MSGPACK.encode({"type": "tick", "seq": seq, "t": 1, "offset": "1-0"})
        assert tick_seq(frame) == seq
    assert tick_seq(Codec.MSGPACK.encode({"type": "pong", "t": 1})) is None
    assert tick_seq(Codec.MSGPACK.encode({"type": "welcome", "seq": 3})) is None
    assert tick_seq(Codec.MSGPACK.encode({"type": "tick", "seq": -1})) is None  # not a uint


# ---- session state: resume, seq, gaps, duplicates --------------------------------------------


def test_offsets_order_numerically_not_as_strings() -> None:
    assert offset_key("999-0") < offset_key("1000-0")
    assert offset_key("5-2") < offset_key("5-10")
    assert offset_key("7") == (7, 0)


def test_a_first_join_then_ticks_in_order() -> None:
    session = Session("tok", device="dev-12345", ref="r")
    assert not session.resuming
    assert session.hello() == {"type": "hello", "token": "tok", "device": "dev-12345", "ref": "r"}
    joined = session.on_welcome(welcome(4, "10-0", "9-0", "10-0"))
    assert (joined.start_over, [e["id"] for e in joined.entries]) == (False, ["9-0", "10-0"])
    assert [e["id"] for e in session.on_tick(tick(5, "12-0", "11-0", "12-0"))] == ["11-0", "12-0"]
    assert session.on_tick(tick(6, "12-0", stats={"online": 1})) == []  # stats only
    assert (session.seq, session.offset, session.gaps, session.duplicates) == (6, "12-0", 0, 0)
    assert session.resuming
    assert session.hello()["since"] == "12-0"


def test_a_seq_jump_is_a_gap_and_an_old_entry_a_duplicate() -> None:
    session = Session()
    session.on_welcome(welcome(1, "10-0"))
    fresh = session.on_tick(tick(3, "30-0", "9-0", "10-0", "20-0", "30-0"))  # seq 2 missed
    assert [e["id"] for e in fresh] == ["20-0", "30-0"]
    assert (session.gaps, session.duplicates, session.seq) == (1, 2, 3)


def test_a_recovered_resume_replays_without_duplicates() -> None:
    session = Session()
    session.on_welcome(welcome(1, "10-0"))
    session.on_tick(tick(2, "20-0", "20-0"))
    assert session.hello() == {"type": "hello", "since": "20-0"}
    joined = session.on_welcome(welcome(40, "40-0", "20-0", "30-0", "40-0", recovered=True))
    assert (joined.start_over, [e["id"] for e in joined.entries]) == (False, ["30-0", "40-0"])
    assert (session.seq, session.offset, session.gaps, session.duplicates) == (40, "40-0", 0, 1)
    session.on_tick(tick(41, "41-0"))  # seq continues from the new welcome's
    assert session.gaps == 0


def test_an_unrecovered_resume_starts_over_from_its_history() -> None:
    session = Session()
    session.on_welcome(welcome(1, "10-0"))
    joined = session.on_welcome(welcome(1, "900-0", "5-0", "900-0", recovered=False))
    assert (joined.start_over, [e["id"] for e in joined.entries]) == (True, ["5-0", "900-0"])
    assert (session.gaps, session.duplicates, session.offset) == (1, 0, "900-0")


def test_restart_makes_the_next_hello_a_first_join() -> None:
    session = Session("tok")
    session.on_welcome(welcome(1, "10-0"))
    session.restart()
    assert session.hello() == {"type": "hello", "token": "tok"}
    assert not session.on_welcome(welcome(1, "5-0", "3-0", recovered=False)).start_over
    assert session.gaps == 0


# ---- requests -------------------------------------------------------------------------------


def test_requests_get_fresh_ids_and_keep_a_given_one() -> None:
    requests: Requests[str] = Requests()
    first, sent = requests.open({"type": "comment", "text": "hi"}, "w1")
    second, _ = requests.open({"type": "like", "count": 1}, "w2")
    mine, grab = requests.open({"type": "grab", "sale": "s1"}, "w3", "g-1")
    assert sent == {"type": "comment", "text": "hi", "id": first}
    assert first.startswith(requests.prefix)
    assert len({first, second, mine}) == 3
    assert (mine, grab["id"]) == ("g-1", "g-1")
    assert Requests().prefix != requests.prefix  # random per client
    assert Requests("v7.").new_id() == "v7.1"


def test_answers_find_their_request_by_ref() -> None:
    requests: Requests[str] = Requests("x-")
    ids = [requests.open({"type": "ping"}, f"w{n}")[0] for n in range(4)]
    assert requests.match({"type": "tick", "ref": ids[0]}) is None  # not an answer
    assert requests.match({"type": "error", "code": "banned"}) is None  # no ref: a push
    assert requests.match({"type": "ack", "ref": "x-99"}) is None  # unknown
    assert requests.match({"type": "ack", "ref": 1}) is None  # not a string
    assert requests.match({"type": "pong", "ref": ids[2], "t": 1}) == "w2"
    assert requests.match({"type": "pong", "ref": ids[2], "t": 1}) is None  # answered once
    assert requests.match({"type": "error", "ref": ids[0], "code": "muted"}) == "w0"
    assert requests.forget(ids[1]) == "w1"
    assert requests.forget(ids[1]) is None
    assert requests.drain() == ["w3"]
    assert requests.pending == {}


# ---- close codes, refusals, shedding --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reconnect"),
    [(None, True), (1000, False), (1001, True), (1006, True), (1007, False), (1009, False),
     (1011, True), (1012, True), (1013, True), (1014, True), (1015, False), (3000, True),
     (3001, True), (3002, True), (3003, True), (3499, True), (3500, False), (3501, False),
     (3502, False), (3503, False), (3504, False), (3999, False), (4000, False)],
)  # fmt: skip
def test_reconnect_follows_the_close_code_table(code: int | None, reconnect: bool) -> None:
    assert should_reconnect(code) is reconnect


@pytest.mark.parametrize("code", list(CloseCode))
def test_reconnect_agrees_with_the_engines_close_codes(code: CloseCode) -> None:
    assert should_reconnect(int(code)) is code.reconnect


def test_close_frames_carry_their_code() -> None:
    assert close_code((3001).to_bytes(2, "big") + b"slow consumer: reconnect and resume") == 3001
    assert close_code(b"\x03\xe8") == 1000
    assert close_code(b"") is None
    assert close_code(b"\x03") is None


def test_refusals_and_what_may_be_retried() -> None:
    refused = {"type": "error", "code": "token_expired", "message": "", "retryable": False}
    shed = {"type": "error", "code": "unavailable", "message": "", "retryable": True}
    answer = {"type": "error", "code": "muted", "retryable": False, "ref": "r1"}
    assert is_refusal(refused)
    assert is_refusal(shed)
    assert not is_refusal(answer)
    assert not is_refusal({"type": "welcome"})
    assert (retryable(refused), retryable(shed), retryable({"code": "x"})) == (False, True, False)


def test_a_shed_handshake_says_when_to_come_back() -> None:
    assert retry_after_s("10") == 10.0
    assert retry_after_s(" 3 ") == 3.0
    for bad in (None, "", "1.5", "-1", "²", "Wed, 21 Oct 2015 07:28:00 GMT"):
        assert retry_after_s(bad) is None
    rng = random.Random(7)
    delays = [shed_delay_s(10.0, rng) for _ in range(200)]
    assert 10.0 <= min(delays) < 10.5
    assert 14.5 < max(delays) <= 15.0


# ---- no I/O, no engine -------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_the_core_does_no_io() -> None:
    allowed = {"__future__", "collections", "dataclasses", "functools", "itertools", "random",
               "secrets", "typing", "msgpack", "orjson"}  # fmt: skip
    assert _imports(ROOT / "clients" / "core.py") <= allowed


def test_clients_do_not_import_the_engine() -> None:
    for path in (ROOT / "clients").glob("*.py"):
        assert "engine" not in _imports(path), path.name
