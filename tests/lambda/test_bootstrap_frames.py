"""The bootstrap's response frames read incrementally: any chunking of any frames gives the same frames,
and a frame's output becomes log lines with its exact bytes."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given
from hypothesis import strategies as st

from sockerless_lambda.bootstrap.frames import (
    EXIT_STREAM,
    HEADER_SIZE,
    Frame,
    FrameParser,
    encode_frame,
    lines_of,
)

WHEN = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
frames_strategy = st.lists(
    st.builds(Frame, st.sampled_from([1, 2, 3, EXIT_STREAM, 7]), st.binary(max_size=300)), max_size=20
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


@given(frames_strategy, st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_chunking_gives_the_same_frames(frames: list[Frame], cuts: list[int]) -> None:
    body = b"".join(encode_frame(frame.stream, frame.data) for frame in frames)
    parser = FrameParser()
    parsed = [frame for chunk in _chunks(body, cuts) for frame in parser.feed(chunk)]
    assert parsed == frames
    assert parser.pending == 0


def test_a_frame_is_given_as_soon_as_its_last_byte_arrives() -> None:
    parser = FrameParser()
    body = encode_frame(1, b"hello\n")
    assert parser.feed(body[:-1]) == []
    assert parser.pending == len(body) - 1
    assert parser.feed(body[-1:]) == [Frame(1, b"hello\n")]


def test_a_cut_body_leaves_its_partial_frame_pending() -> None:
    parser = FrameParser()
    assert parser.feed(encode_frame(2, b"abc")[: HEADER_SIZE + 1]) == []
    assert parser.pending == HEADER_SIZE + 1


@given(st.binary(max_size=500))
def test_lines_keep_the_exact_bytes(data: bytes) -> None:
    lines = lines_of(1, data, WHEN)
    assert b"".join(line.data for line in lines) == data
    assert all(line.data.endswith(b"\n") for line in lines[:-1])
    assert all(b"\n" not in line.data[:-1] for line in lines)


def test_a_last_part_without_newline_is_its_own_line() -> None:
    assert [line.data for line in lines_of(2, b"a\nb\r\nc", WHEN)] == [b"a\n", b"b\r\n", b"c"]
    assert {line.stream for line in lines_of(2, b"a\nb", WHEN)} == {2}


def test_non_utf8_bytes_pass_unchanged() -> None:
    assert [line.data for line in lines_of(1, b"\xff\xfe\n\x00", WHEN)] == [b"\xff\xfe\n", b"\x00"]
