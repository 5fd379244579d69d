"""Reading corpus files in chunks: line numbers, long lines and truncation across chunk boundaries."""

from __future__ import annotations

import io

import pytest

from corpusforge import corpus
from corpusforge.corpus import read_lines


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_lines_split_the_same_at_any_chunk_size(chunk):
    data = b"a\n\nbcd\r\nef\nlast"
    got = list(read_lines(io.BytesIO(data), chunk_size=chunk))
    assert got == [(1, b"a", True), (2, b"", True), (3, b"bcd\r", True), (4, b"ef", True), (5, b"last", False)]


@pytest.mark.parametrize("chunk", [1, 3, 4, 16])
def test_a_long_line_is_skipped_without_losing_the_next(monkeypatch, chunk):
    monkeypatch.setattr(corpus, "MAX_LINE_BYTES", 8)
    data = b"short\n" + b"x" * 30 + b"\nafter\n" + b"y" * 20
    got = list(read_lines(io.BytesIO(data), chunk_size=chunk))
    assert got == [(1, b"short", True), (2, None, True), (3, b"after", True), (4, None, False)]
