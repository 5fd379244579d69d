"""Write sample_data/invalid.jsonl: one valid record, then one problem per line.

The tests read this file and expect each problem at the line written here.
Run from the repository root: python sample_data/make_invalid.py
"""

import json
from pathlib import Path

here = Path(__file__).parent
good = json.loads((here / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])


def variant(**changes):
    rec = json.loads(json.dumps(good))
    for key, value in changes.items():
        if value is None:
            rec.pop(key)
        else:
            rec[key] = value
    return json.dumps(rec, ensure_ascii=False).encode()


swapped = json.loads(json.dumps(good))
swapped["segments"] = list(reversed(swapped["segments"]))
edited = json.loads(json.dumps(good))
edited["text"] = edited["text"].replace(" ", "  ", 1)
lines = [
    json.dumps(good, ensure_ascii=False).encode(),          # 1 valid
    b"",                                                      # 2 blank (accepted)
    b'{"id": "abc",',                                         # 3 invalid JSON
    b"[1, 2, 3]",                                             # 4 not an object
    variant(index="5"),                                       # 5 wrong type
    variant(text=None),                                       # 6 missing field
    variant(colour="blue"),                                   # 7 unknown field
    json.dumps(swapped, ensure_ascii=False).encode(),         # 8 roles out of order (and overlap, id)
    variant(pattern="riddle_turn"),                           # 9 unknown pattern (and id)
    json.dumps(edited, ensure_ascii=False).encode(),          # 10 text edited: spans and id no longer match
    b'{"id": "\xff\xfe"}',                                    # 11 broken UTF-8
]
(here / "invalid.jsonl").write_bytes(b"\n".join(lines) + b"\n")
print(f"wrote {len(lines)} lines to {here / 'invalid.jsonl'}")
