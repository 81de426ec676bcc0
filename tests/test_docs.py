"""The docs keep up with the code: every CLI command is in the README; every error code the
engine can raise is in an error table and every close code in the close-code table; every
msgpack example decodes to its JSON twin, at the size the text says; the sale object's
table lists what the engine returns. tests/test_docs_protocol.py compares the examples of
server messages with real frames."""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from websockets.asyncio.client import connect

from clients import HostClient
from engine.cli import build_parser
from engine.commerce.sales import Sale
from engine.core import errors
from engine.core.errors import ERROR_CODES, LivecartError, error_codes
from engine.core.feature import load_features
from engine.core.settings import DEFAULT_FEATURES
from engine.realtime.protocol import CloseCode
from engine.server.app import Engine
from tests.conftest import token

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ENGINE = ROOT / "engine"
INVALID_UTF8 = 1007  # websockets closes with it when a text frame is not UTF-8 (RFC 6455)


def all_docs() -> str:
    return "\n".join(path.read_text() for path in sorted(DOCS.glob("*.md")))


# ---- reading the docs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced code block: where it is, the text just before it, and what is in it."""

    doc: str
    line: int  # of the opening fence, 1-based
    lang: str
    caption: str  # the last non-empty line before the block
    section: str  # the heading it sits under
    body: str

    @property
    def where(self) -> str:
        return f"docs/{self.doc}:{self.line} ({self.caption.strip()[:60]})"

    @property
    def is_hex(self) -> bool:
        return not self.lang and bool(re.fullmatch(r"[0-9a-f]+", self.body.strip()))

    def objects(self) -> list[Any]:
        """The JSON in a `json` block: one value, or one per line (JSON lines)."""
        try:
            return [orjson.loads(self.body)]
        except orjson.JSONDecodeError:
            return [orjson.loads(line) for line in self.body.splitlines() if line.strip()]


def blocks(doc: str) -> list[Block]:
    lines = (DOCS / doc).read_text().split("\n")
    found: list[Block] = []
    section, caption, i = "", "", 0
    while i < len(lines):
        line = lines[i]
        fence = re.fullmatch(r"\s*```(\w*)\s*", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```"))
            body = "\n".join(lines[i + 1 : end])
            found.append(Block(doc, i + 1, fence.group(1), caption, section, body))
            i = end + 1
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if line.strip():
            caption = line
        i += 1
    return found


def table_rows(doc: str, section: str) -> Iterator[list[str]]:
    """The cells of every table row between the heading `section` and the next heading of
    the same or a higher level."""
    text = (DOCS / doc).read_text()
    heading = re.search(rf"^(#+) {re.escape(section)}\n", text, re.MULTILINE)
    assert heading, f"no section {section!r} in docs/{doc}"
    level = len(heading.group(1))
    rest = text[heading.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    for line in rest[: end.start() if end else None].splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            yield [cell.strip() for cell in line.strip("|").split("|")]


def first_column_names(doc: str, section: str) -> set[str]:
    """The `code`-quoted names in the first column of a section's tables."""
    return {name for row in table_rows(doc, section) for name in re.findall(r"`([^`]+)`", row[0])}


# ---- CLI ------------------------------------------------------------------------------------


def test_every_command_is_in_the_readme() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"livecart {name}" in readme


# ---- error codes ----------------------------------------------------------------------------

# Codes the Lua scripts return that the Python caller turns into another error (or handles)
# before anything reaches a client: the script that returns it, and what it becomes.
LUA_INTERNAL = {
    "available": ("waitlist_join", "sale_available"),
    "ended": ("waitlist_join", "sale_ended"),
    "not_started": ("waitlist_join", "sale_not_started"),
    "expired": ("confirm", "reservation_not_held"),
    "not_found": ("confirm", "reservation_not_found"),
    "not_held": ("confirm", "reservation_not_held"),
    "drop_exists": ("coupon_drop", "a drop id taken: internal"),
    "over_total": ("coupon_drop", "coupons_exhausted"),
    "entrants_changed": ("giveaway_close", "the close draws again"),
    "not_a_permutation": ("product_show", "invalid_field"),
    "out_of_order": ("auction_offer", "a racing offer: read again"),
    "state": ("psp_refund", "psp_refused"),
    "over": ("psp_refund", "psp_refused"),
    "poll_exists": ("poll_open", "a poll id taken: internal"),
    "invalid_option": ("poll_vote", "invalid_field"),
}
LUA_ERR = re.compile(r"""\{\s*['"]err['"]\s*,\s*['"]([a-z_]+)['"]""")


def lua_error_codes() -> dict[str, set[str]]:
    """Code -> the scripts that return it as `{'err', code, ...}`."""
    found: dict[str, set[str]] = {}
    for path in sorted(ENGINE.rglob("lua/*.lua")):
        for code in LUA_ERR.findall(path.read_text()):
            found.setdefault(code, set()).add(str(path.relative_to(ROOT)))
    return found


def raised_codes() -> dict[str, set[str]]:
    """Code -> where the engine's Python constructs an error with it: a literal `code=...`,
    or no code at all (the class's `default_code`). Codes passed as variables come from
    the Lua scripts or the registry in engine/core/errors.py, collected apart."""
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, LivecartError)
    }
    found: dict[str, set[str]] = {}
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name not in classes:
                continue
            given = {k.arg: k.value for k in node.keywords}
            if "code" not in given:
                code = classes[name].default_code
            elif isinstance(given["code"], ast.Constant) and isinstance(given["code"].value, str):
                code = given["code"].value
            else:
                continue
            found.setdefault(code, set()).add(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def emitted_codes() -> dict[str, str]:
    """Every code the engine can put on the wire, and one place it comes from."""
    codes = {code: "engine/core/errors.py" for code in ERROR_CODES}
    for code, where in raised_codes().items():
        codes[code] = sorted(where)[0]
    for code, scripts in lua_error_codes().items():
        if code not in LUA_INTERNAL:
            codes[code] = sorted(scripts)[0]
    return codes


# Error tables: protocol.md's, and the own page of each feature that brings error codes
# (docs/<feature>.md § Errors).
FEATURES = load_features(DEFAULT_FEATURES)
ERROR_TABLES = [("protocol.md", "Errors"),
                *((f"{f.name}.md", "Errors") for f in FEATURES if f.errors)]  # fmt: skip


def documented_codes() -> set[str]:
    """The codes in the first column of the error tables."""
    return {code for doc, section in ERROR_TABLES for code in first_column_names(doc, section)}


def test_the_code_sources_are_read() -> None:
    """The collectors find what is there (a collector that finds nothing checks nothing)."""
    raised = raised_codes()
    assert {"bad_frame", "sale_not_found", "payments_disabled", "winner_holds"} <= set(raised)
    assert "conflict" not in raised  # every ConflictError names its code
    lua = lua_error_codes()
    assert {"bid_too_low", "auction_closed", "team_full", "muted"} <= set(lua)
    for code, (script, _) in LUA_INTERNAL.items():
        returned_by = {Path(path).stem for path in lua.get(code, set())}
        assert script in returned_by, f"{script}.lua no longer returns {code!r}"
        assert code not in ERROR_CODES, f"{code!r} is a wire code; drop it from LUA_INTERNAL"


@pytest.mark.parametrize(("code", "source"), sorted(emitted_codes().items()))
def test_every_error_code_is_in_the_error_table(code: str, source: str) -> None:
    assert code in documented_codes(), (
        f"error code {code!r} (from {source}) is in no error table (docs/protocol.md § Errors "
        "or its feature's page)"
    )


def test_the_error_table_has_no_code_the_engine_lacks() -> None:
    assert documented_codes() - set(emitted_codes()) == set()


def test_the_error_table_gives_each_code_its_http_status() -> None:
    """The HTTP column of every error table is the status of the code's error class."""
    wrong = []
    for row in (row for doc, section in ERROR_TABLES for row in table_rows(doc, section)):
        status = re.fullmatch(r"\d{3}", row[1])
        for code in re.findall(r"`([a-z_]+)`", row[0]):
            cls = errors.error_for_code(code, "").__class__
            if status and code in error_codes() and int(status.group()) != cls.http_status:
                wrong.append(f"{code}: the table says {row[1]}, the engine {cls.http_status}")
    assert wrong == []


def test_every_error_code_is_documented() -> None:
    """Every registered code appears somewhere in the docs, quoted."""
    text = all_docs()
    assert [code for code in sorted(error_codes()) if f"`{code}`" not in text] == []


# ---- close codes ----------------------------------------------------------------------------


def documented_close_codes() -> set[int]:
    found: set[int] = set()
    for row in table_rows("protocol.md", "Close codes and reconnecting"):
        numbers = [int(n) for n in re.findall(r"`(\d{4})`", row[0])]
        if "\u2013" in row[0] and len(numbers) == 2:  # an en dash: a range
            numbers = list(range(numbers[0], numbers[1] + 1))
        found.update(numbers)
    return found


@pytest.mark.parametrize("code", [*sorted(CloseCode), INVALID_UTF8], ids=str)
def test_every_close_code_is_in_the_close_code_table(code: int) -> None:
    assert int(code) in documented_close_codes()


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(engine: Engine, room: str) -> None:
    """The close-code table's 1007 is what the engine (the websockets layer) sends."""
    async with connect(f"{engine.ws_url}/{room}", subprotocols=["livecart.v1.json"]) as ws:  # type: ignore[list-item]
        await ws.send(orjson.dumps({"type": "hello", "token": token(room)}).decode())
        assert orjson.loads(await ws.recv())["type"] == "welcome"
        await ws.send(b'{"type":"ping","id":"\xff\xfe"}', text=True)
        async with asyncio.timeout(10):
            await ws.wait_closed()
    assert ws.close_code == INVALID_UTF8


# ---- msgpack examples and sizes -------------------------------------------------------------


def twins(doc: str) -> list[tuple[Block, Block]]:
    """Each msgpack hex block with the JSON block before it (its twin)."""
    found, last_json = [], None
    for block in blocks(doc):
        if block.lang == "json":
            last_json = block
        elif block.is_hex:
            assert last_json is not None, block.where
            found.append((last_json, block))
    return found


def twin_of(json_block: Block, hex_block: Block, decoded: Any) -> Any:
    """The JSON object the hex block encodes: the block's object; with `"recovered": true`
    appended when the caption says so; among JSON lines, the one of the same `kind`."""
    objects = json_block.objects()
    if len(objects) > 1:
        kinds = [o for o in objects if o.get("kind") == decoded.get("kind")]
        assert len(kinds) == 1, f"{hex_block.where}: which JSON line is its twin?"
        return kinds[0]
    [obj] = objects
    if '"recovered": true' in hex_block.caption:
        return {**obj, "recovered": True}
    return obj


TWINS = [pair for doc in ("protocol.md", "api.md") for pair in twins(doc)]


def test_the_msgpack_examples_are_found() -> None:
    assert len(TWINS) > 60


@pytest.mark.parametrize(("json_block", "hex_block"), TWINS, ids=lambda b: f"{b.doc}:{b.line}")
def test_msgpack_example_is_its_json_twin(json_block: Block, hex_block: Block) -> None:
    """The hex decodes to exactly the JSON beside it, and is what `msgpack.packb` writes
    for it (so its key order too)."""
    frame = bytes.fromhex(hex_block.body.strip())
    decoded = msgpack.unpackb(frame, raw=False)
    twin = twin_of(json_block, hex_block, decoded)
    assert decoded == twin, f"{hex_block.where} is not {json_block.where}"
    assert msgpack.packb(twin, use_bin_type=True) == frame, hex_block.where


def sized_blocks(doc: str) -> list[tuple[Block, int]]:
    return [
        (block, int(size.group(1)))
        for block in blocks(doc)
        if (size := re.search(r"(\d[\d,]*) bytes", block.caption))
        and (block.lang == "json" or block.is_hex)
    ]


SIZED = sized_blocks("protocol.md")


def test_the_sized_examples_are_found() -> None:
    assert len(SIZED) >= 4


@pytest.mark.parametrize(("block", "size"), SIZED, ids=lambda v: str(getattr(v, "line", v)))
def test_documented_sizes_are_the_frame_sizes(block: Block, size: int) -> None:
    if block.is_hex:
        actual = len(bytes.fromhex(block.body.strip()))
    else:
        [obj] = block.objects()
        actual = len(orjson.dumps(obj))
    assert actual == size, f"{block.where}: says {size} bytes, the frame is {actual}"


def compact_examples() -> list[Block]:
    """One-line JSON examples of protocol.md's frames: written as `orjson.dumps` writes them."""
    return [
        block
        for block in blocks("protocol.md")
        if block.lang == "json" and "\n" not in block.body.strip()
        and block.body.lstrip().startswith('{"type"')
    ]  # fmt: skip


@pytest.mark.parametrize("block", compact_examples(), ids=lambda b: str(b.line))
def test_one_line_json_examples_are_compact(block: Block) -> None:
    assert orjson.dumps(orjson.loads(block.body)).decode() == block.body.strip(), block.where


# ---- the sale object ------------------------------------------------------------------------


def sale_table_fields() -> set[str]:
    return first_column_names("api.md", "The sale object")


def sale_examples() -> list[Block]:
    """api.md's JSON examples of sale objects (alone, or listed in `sales`)."""
    return [block for block in blocks("api.md") if block.lang == "json"
            and block.section.startswith(("`GET /api/rooms/{room}/sales`",
                                          "`POST /api/rooms/{room}/sales"))
            and "error" not in block.objects()[0]]  # fmt: skip


ID_KEY = re.compile(r"[a-z][0-9]{1,9}")  # a map keyed by ids: tick `stock` (s1) and `drops` (d2)


def shape(value: Any) -> Any:
    """Keys at every level and the type of every value, comparable with `==`: a list is the
    set of its items' shapes, a map keyed by ids the set of its values' shapes."""
    if isinstance(value, dict):
        if value and all(ID_KEY.fullmatch(key) for key in value):
            return {"<id>": shape(list(value.values()))}
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        items = {orjson.dumps(shape(item), option=orjson.OPT_SORT_KEYS) for item in value}
        return ["list", *sorted(items)]
    return type(value).__name__


async def test_the_sale_table_lists_every_field_the_engine_returns(
    engine: Engine, room: str, host: HostClient
) -> None:
    await host.create_product("Mug", "EUR", [{"sku": "MUG-1", "list_price": 1500}])
    await host.launch_sale("MUG-1", 5)
    sale = await host.sale("s1")
    assert set(sale) == sale_table_fields(), "docs/api.md § The sale object"
    examples = sale_examples()
    assert len(examples) >= 5
    for block in examples:
        [obj] = block.objects()
        for example in obj.get("sales", [obj]):
            assert shape(example) == shape(sale), block.where


def test_the_tick_table_names_every_stock_field() -> None:
    """protocol.md § `tick`: the `stock` row names every field of a sale's stock."""
    sale = Sale(id="s1", sku="A", product="p1", title="A", price=1, currency="EUR", limit=1,
                hold_ms=1, allotment=1, topups=0, available=1, reserved=0, sold=0,
                created_at=0, starts_at=0, ends_at=1)  # fmt: skip
    [row] = [row for row in table_rows("protocol.md", "`tick`") if row[0] == "`stock`"]
    named = set(re.findall(r"[a-z_]+", row[3]))
    assert [field for field in sale.stock() if field not in named] == []


# ---- security.md ----------------------------------------------------------------------------

TEST_REF_RE = re.compile(r"`(tests/test_[a-z0-9_]+\.py)::([A-Za-z0-9_]+)")


def threat_rows() -> list[tuple[str, str]]:
    """(number, row text) of every row of security.md's threat table."""
    text = (DOCS / "security.md").read_text()
    return re.findall(r"^\| (\d+) \|(.*)$", text, re.MULTILINE)


def test_the_threat_rows_are_found() -> None:
    assert len(threat_rows()) >= 38


@pytest.mark.parametrize(("number", "row"), threat_rows(), ids=lambda v: str(v)[:6])
def test_every_threat_row_names_tests_that_exist(number: str, row: str) -> None:
    """docs/security.md has no threat without a test, and names no test that is gone."""
    refs = TEST_REF_RE.findall(row)
    assert refs, f"threat {number} names no test"
    for path, name in refs:
        source = (ROOT / path).read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), (
            f"threat {number}: {path}::{name} does not exist"
        )
