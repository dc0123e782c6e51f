"""JSON answers: orjson's output, and the standard library's for what orjson refuses."""

from __future__ import annotations

import json

from sockerless import jsonio


def test_documents_round_trip_compact_and_utf8() -> None:
    document = {"Id": "a" * 64, "Labels": {"名前": "値"}, "Created": 1700000000, "Ports": [], "X": None}
    encoded = jsonio.dumps(document)
    assert encoded == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(encoded) == document


def test_what_orjson_refuses_still_encodes() -> None:
    big = {"Memory": 2**70, 3: "int key"}  # beyond 64 bits; a key that is not a string
    assert json.loads(jsonio.dumps(big)) == {"Memory": 2**70, "3": "int key"}
