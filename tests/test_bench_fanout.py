"""`livecart bench fanout` runs end to end and reports the contract's fields (small
numbers: this checks the benchmark's behaviour and accounting, not the machine's speed)."""

from __future__ import annotations

import subprocess
import sys

import orjson

from engine.bench.leanws import client_frame, mask
from engine.bench.loader import summarize
from engine.realtime.codec import Codec

CONTRACT = {
    "viewers", "comments_per_second", "seconds", "deliveries_per_second", "frames_per_second",
    "latency_ms", "missed", "engine_cpu_percent", "rss_per_connection_kib",
    "engine_sends_per_second", "raw_broadcast_sends_per_second", "ratio_to_raw",
}  # fmt: skip


def test_mask_round_trips() -> None:
    key = b"\x01\x02\x03\x04"
    payload = bytes(range(256)) * 3
    assert mask(mask(payload, key), key) == payload
    assert mask(b"", key) == b""


def test_client_frames_carry_length_and_mask_bit() -> None:
    small, medium = client_frame(0x2, b"x" * 10), client_frame(0x2, b"x" * 300)
    assert (small[0], small[1]) == (0x82, 0x80 | 10)
    assert (medium[1], int.from_bytes(medium[2:4], "big")) == (0x80 | 126, 300)


def test_summarize_counts_comments_and_sampling() -> None:
    frame = Codec.MSGPACK.encode({
        "type": "tick", "seq": 1, "t": 1, "offset": "2-0", "sampled_out": 3,
        "entries": [
            {"id": "1-0", "kind": "comment", "text": "t1000.5 hi"},
            {"id": "2-0", "kind": "comment_deleted", "ref": "0-1"},
        ],
    })  # fmt: skip
    summary = summarize(frame)
    assert (summary.comments, summary.sampled_out, summary.sent_at_ms) == (1, 3, (1000.5,))


def test_bench_fanout_reports_every_contract_field() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "bench", "fanout", "--viewers", "40",
         "--comments-per-second", "20", "--seconds", "2", "--json"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = orjson.loads(result.stdout)
    assert set(report) >= CONTRACT
    assert report["viewers"] == 40
    assert report["missed"] == 0
    assert report["duplicates"] == 0
    assert report["seq_gaps"] == 0
    assert report["comments_posted"] > 0
    assert report["comments_acknowledged"] == report["comments_posted"]
    # Every viewer accounts for every comment: shown, or reported as sampled out.
    assert report["deliveries_per_second"] > 0
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert report["engine_sends_per_second"] > 0
    assert report["raw_broadcast_sends_per_second"] > 0
    assert report["ratio_to_raw"] > 0
    # The engine and the bare baseline alternate, both sides measured in every round.
    assert len(report["ratio_rounds"]) == report["saturation"]["rounds"] >= 2
    assert all(ratio > 0 for ratio in report["ratio_rounds"])
    assert report["saturation"]["frames"] > 0
    assert report["saturation"]["raw_frames"] > 0
