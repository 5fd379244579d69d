"""The writers' cache: every answer kept under the hash of what asked for it.

The key is sha256 over (writer identity, prompt, constraint, sampling parameters, the record's seed key), so an
answer is reused only for exactly the same question: a re-run asks the model nothing, a run killed midway
resumes without asking again what it already has, and ``--offline`` runs from the cache alone. Each answer is
one small JSON file, written atomically (``ab/abcdef….json``); a refused answer is kept too (it is what the
writer said), so a re-run refuses it again without asking.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orjson

from .._atomic import write_atomic
from ..errors import GenerateError


def default_cache() -> Path:
    from ..lm.embedded import cache_root

    return cache_root() / "writes"


def cache_key(identity: dict, prompt: str, constraint: dict, sampling: dict, seed_key: str) -> str:
    blob = json.dumps([identity, prompt, constraint, sampling, seed_key], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class WriteCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise GenerateError("the writers' cache is not a folder", file=str(self.root),
                                hint="point --cache at a folder")

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> tuple[bool, str | None]:
        """(found, the answer — None where the writer gave none)."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False, None
        except OSError as e:
            raise GenerateError(f"cannot read the writers' cache: {e.strerror}", file=str(path)) from None
        try:
            entry = orjson.loads(data)
            text = entry["text"]
            if entry.get("key") != key or not (text is None or isinstance(text, str)):
                raise ValueError
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise GenerateError("a cache entry is damaged", file=str(path),
                                hint="delete it (or the whole cache folder) and run again") from None
        return True, text

    def put(self, key: str, text: str | None) -> None:
        path = self._path(key)
        try:
            write_atomic(path, orjson.dumps({"key": key, "text": text}))
        except OSError as e:
            raise GenerateError(f"cannot write the writers' cache: {e.strerror}", file=str(path.parent),
                                hint="make it writable, or point --cache at another folder") from None


def answers_for(asks: list, indices: list[int], writer, cache: WriteCache, offline: bool, tally) -> list[str | None]:
    """Each ask's answer: from the cache, else from the writer (and then cached). ``indices``: the record each
    ask belongs to, for the --offline error; ``tally`` counts what was asked and what the cache had."""
    found = [cache.get(a.key) for a in asks]
    missing = [i for i, (hit, _) in enumerate(found) if not hit]
    tally.cached += len(asks) - len(missing)
    if missing and offline:
        raise GenerateError(f"--offline: the cache lacks {len(missing)} of the answers asked for "
                            f"(the first: record {indices[missing[0]]})",
                            hint=f"run without --offline to ask the writer, or check --cache ({cache.root})")
    answers = [text for _, text in found]
    if missing:
        written = writer.write([asks[i] for i in missing])
        for i, text in zip(missing, written):
            cache.put(asks[i].key, text)
            answers[i] = text
        tally.asked += len(missing)
    return answers
