"""Draw helpers: the dedup/premise normal form and its fast path."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from corpusforge.draw import normalise


def reference(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@pytest.mark.parametrize("text", [
    "If the river freezes, then the path becomes movement.",
    "Если река замерзает, то путь становится движением.",
    "  leading", "trailing ", "two  spaces", "tab\there", "line\nbreak", "no\u00a0break", "thin\u2009space",
    "ＦＵＬＬＷＩＤＴＨ", "Straße", "ﬁ ligature", "", " ", "\u2028", "x\x1fy",
])
def test_normalise_is_nfkc_casefold_with_collapsed_white_space(text):
    assert normalise(text) == reference(text)


def test_printable_text_holds_no_white_space_but_the_ascii_space():
    # normalise's fast path returns a printable string unchanged when it has no double or edge spaces
    assert [c for c in range(sys.maxunicode + 1) if chr(c).isspace() and chr(c).isprintable() and c != 32] == []
