"""Generating a corpus: templates → records → a corpus folder, reproducibly.

The output is defined by (templates, seed, n, continuations, splits) alone:
- unit ``i`` (a premise and its continuations) is drawn from a hash of
  (seed, template, version, i); with ``--workers K`` units are drawn in K
  processes but kept or dropped in order by one process, so the bytes do not
  depend on K;
- a record is dropped when its normalised text was already kept (exact dedup;
  identical template, variant and slots always give identical text, so
  structural duplicates are dropped by the same check);
- ``--shard i/N`` keeps records ``[i*n//N, (i+1)*n//N)`` of that same sequence,
  so the shards concatenated in order are the unsharded corpus. A shard
  re-draws the records before its range to know what was kept (it renders
  them but does not write them);
- files are written under ``.NAME.partial/`` and renamed into place at the end;
  ``--resume`` finishes an interrupted run to the identical result.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterator, Sequence

import orjson

from . import __version__
from ._atomic import atomic_dir, sha256_file, sha256_stream, write_atomic
from .columnar import arrow_schema, to_row
from .draw import cumulative, key64, normalise, pick, premise_id, split_of, uniforms, uniforms_from
from .errors import GenerateError
from .records import build_record
from .templates.registry import Registry, load_registry, resolve_templates
from .templates.spec import Template

DEFAULT_SPLITS = {"train": 0.9, "validation": 0.05, "test": 0.05}
UNITS_PER_BLOCK = 1000
CHECKPOINT_EVERY = 50_000  # records
MAX_REDRAWS = 64            # per constraint or continuation
GIVE_UP_AFTER = 20_000      # consecutive units that add nothing new
PREMISE_MEMORY = 1 << 16    # premise texts whose id and split a Drawer remembers


@dataclass
class GenerateConfig:
    """What to generate. The output depends only on the fields marked (*)."""

    templates: list[str] = field(default_factory=list)   # (*) names or paths, equal weights
    mix: dict[str, float] = field(default_factory=dict)  # (*) name → weight, instead of ``templates``
    n: int = 1000                                        # (*) records in the whole corpus
    seed: int = 0                                        # (*)
    continuations: int = 1                               # (*) continuations per premise
    splits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLITS))  # (*)
    format: str = "jsonl"                                # (*) jsonl or parquet
    shard: tuple[int, int] | None = None                 # (*) (i, N): this machine's part
    workers: int = 1
    resume: bool = False
    overwrite: bool = False
    template_paths: list[str] = field(default_factory=list)
    progress: bool | None = None                         # None: a bar when stderr is a terminal

    def weights(self) -> dict[str, float]:
        if self.mix and self.templates:
            raise GenerateError("give either templates or a mix, not both")
        weights = dict(self.mix) if self.mix else {name: 1.0 for name in self.templates}
        if not weights:
            raise GenerateError("no template given", hint="pass --template NAME or --mix NAME=W,...")
        return weights

    def check(self) -> None:
        if self.n < 1:
            raise GenerateError(f"--n must be at least 1, got {self.n}")
        if self.continuations < 1:
            raise GenerateError(f"--continuations must be at least 1, got {self.continuations}")
        if self.workers < 1:
            raise GenerateError(f"--workers must be at least 1, got {self.workers}")
        if self.format not in ("jsonl", "parquet"):
            raise GenerateError(f"--format must be jsonl or parquet, got {self.format!r}")
        if not self.splits or any(w < 0 for w in self.splits.values()) or sum(self.splits.values()) <= 0:
            raise GenerateError(f"--split needs non-negative shares that add up to more than 0, got {self.splits}")
        for name, w in self.weights().items():
            if not w > 0:
                raise GenerateError(f"mix weight of {name!r} must be positive, got {w}")
        if self.shard is not None:
            i, count = self.shard
            if not (count >= 1 and 0 <= i < count):
                raise GenerateError(f"--shard must be i/N with 0 <= i < N, got {i}/{count}")

    def fingerprint(self) -> str:
        """Identifies the output; a resumed run must match the interrupted one."""
        key = [self.weights(), self.n, self.seed, self.continuations, self.splits, self.format, self.shard]
        return hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def command(self) -> str:
        """The command line that regenerates this corpus."""
        parts = ["corpusforge", "generate"]
        if self.mix:
            parts += ["--mix", ",".join(f"{k}={v:g}" for k, v in self.mix.items())]
        for t in self.templates:
            parts += ["--template", t]
        for p in self.template_paths:
            parts += ["--templates", str(p)]
        parts += ["--n", str(self.n), "--seed", str(self.seed)]
        if self.continuations != 1:
            parts += ["--continuations", str(self.continuations)]
        parts += ["--split", ",".join(f"{k}={v:g}" for k, v in self.splits.items()), "--format", self.format]
        if self.shard:
            parts += ["--shard", f"{self.shard[0]}/{self.shard[1]}"]
        return " ".join(shlex.quote(p) for p in parts)


# ---------------------------------------------------------------------------
# Drawing units (runs in worker processes too: pure functions of the index)


@dataclass
class _Prepared:
    """A template with everything a draw needs looked up once (the draw loop runs a million times)."""

    tmpl: Template
    variant_cum: list[float] | None
    slot_cum: dict[str, list[float] | None]
    variants: list  # eligible variants (enough continuation space)
    key_prefix: str  # "seed␟name␟version␟": the fixed part of every draw key of this template
    # derived from the above in __post_init__:
    pattern: str = field(init=False)
    ref: str = field(init=False)
    language: str = field(init=False)
    markers: tuple = field(init=False)
    plain: dict = field(init=False)     # slot → its values as plain strings
    picks: dict = field(init=False)     # slot → (number of values, cumulative weights)
    distinct: tuple = field(init=False)  # constraints: groups of slots whose values differ

    def __post_init__(self) -> None:
        tmpl = self.tmpl
        self.pattern, self.ref, self.language, self.markers = (tmpl.pattern.name, tmpl.ref, tmpl.language,
                                                               tuple(tmpl.markers))
        self.plain = {s: [w.plain for w in ws] for s, ws in tmpl.slot_values.items()}
        self.picks = {s: (len(ws), self.slot_cum[s]) for s, ws in tmpl.slot_values.items()}
        self.distinct = tuple(tuple(c.distinct) for c in tmpl.spec.constraints)


class Drawer:
    """Turns a unit index into its candidate records. Deterministic: what it remembers between units
    (the mix digest of eight units, premise ids) are caches of pure functions."""

    def __init__(self, templates: Sequence[Template], weights: Sequence[float], seed: int,
                 continuations: int, splits: dict[str, float]):
        self.seed = seed
        self.k = continuations
        self.mix_cum = cumulative(weights) if len(templates) > 1 else None
        total = sum(splits.values())
        self.split_names = list(splits)
        acc, self.split_bounds = 0.0, []
        for w in splits.values():
            acc += w / total
            self.split_bounds.append(acc)
        self.prepared = [self._prepare(t) for t in templates]
        self._mix_block: tuple[int, list[int]] = (-1, [])
        self._premises: dict[str, tuple[str, str, int]] = {}

    def _prepare(self, tmpl: Template) -> _Prepared:
        sizes = tmpl.sizes
        eligible = [v for v in tmpl.variants if self.k == 1 or v.continuation_space(sizes) >= self.k]
        if not eligible:
            raise GenerateError(
                f"template {tmpl.name!r} cannot give {self.k} different continuations per premise: no variant "
                f"has {self.k} or more combinations of the slots used only after the premise",
                hint="lower --continuations, or add slot values used in the later roles")
        weights = [v.weight for v in eligible]
        return _Prepared(tmpl, None if len(set(weights)) == 1 else cumulative(weights),
                         {s: cumulative(w) for s, w in tmpl.slot_weights.items()}, eligible,
                         f"{self.seed}\x1f{tmpl.name}\x1f{tmpl.version}\x1f")

    def _premise(self, text: str) -> tuple[str, str, int]:
        """The premise id and split (name, index) of a premise text, remembered: templates repeat
        their premises often."""
        found = self._premises.get(text)
        if found is None:
            if len(self._premises) >= PREMISE_MEMORY:
                self._premises.clear()
            pid = premise_id(text)
            split = split_of(pid, self.split_names, self.split_bounds)
            found = self._premises[text] = (pid, split, self.split_names.index(split))
        return found

    def _mix_draw(self, index: int) -> int:
        """The draw that picks unit ``index``'s template: one digest serves 8 consecutive units."""
        block = index >> 3
        if self._mix_block[0] != block:
            self._mix_block = (block, uniforms(8, self.seed, "mix", block))
        return self._mix_block[1][index & 7]

    @staticmethod
    def _satisfies(prep: _Prepared, choice: dict) -> bool:
        plain = prep.plain
        for group in prep.distinct:
            picked = [plain[s][choice[s]] for s in group if s in choice]
            if len(set(picked)) != len(picked):
                return False
        return True

    def _draw(self, prep: _Prepared, index: int, tag: str, base: tuple | None = None):
        """Draw a variant and its slot values (``base``: keep that variant and premise, redraw the rest)."""
        picks = prep.picks
        count = 1 + len(picks)
        for attempt in range(MAX_REDRAWS):
            # = uniforms(n, seed, name, version, index, tag, attempt)
            draws = uniforms_from(count, f"{prep.key_prefix}{index}\x1f{tag}\x1f{attempt}")
            if base is None:
                variant = prep.variants[pick(draws[0], len(prep.variants), prep.variant_cum)]
                choice: dict = {}
                slots = variant.slots
            else:
                variant, choice = base[0], dict(base[1])
                slots = variant.continuation_slots
            for s, x in zip(slots, draws[1:]):
                n, cum = picks[s]
                choice[s] = (x * n) >> 64 if cum is None else pick(x, n, cum)  # pick(), inlined
            if not prep.distinct or self._satisfies(prep, choice):
                return variant, choice
        raise GenerateError(f"template {prep.tmpl.name!r}: no draw satisfied its constraints after {MAX_REDRAWS} "
                            f"tries (unit {index})", hint="loosen the constraints or add slot values")

    def unit(self, index: int) -> tuple[int | None, int, list[tuple[int, int, dict]]]:
        """Unit ``index``: (premise key or None, template index, [(text key, split index, record), ...])."""
        t_index = 0
        if self.mix_cum is not None:
            t_index = pick(self._mix_draw(index), len(self.prepared), self.mix_cum)
        prep = self.prepared[t_index]
        tmpl = prep.tmpl
        variant, choice = self._draw(prep, index, "u")
        values = tmpl.slot_values
        roles = variant.roles
        premise_role, premise_cs = roles[0]
        premise_text = premise_cs.render(choice, values)
        pid, split, split_index = self._premise(premise_text)
        plain = prep.plain
        out, seen_rest = [], set()
        for j in range(self.k):
            if j > 0:
                for attempt in range(MAX_REDRAWS):
                    _, choice = self._draw(prep, index, f"c{j}.{attempt}", (variant, choice))
                    rest = [cs.render(choice, values) for _, cs in roles[1:]]
                    if tuple(rest) not in seen_rest:
                        break
                else:
                    continue  # this premise has fewer distinct continuations than asked; keep what it has
            else:
                rest = [cs.render(choice, values) for _, cs in roles[1:]]
            if self.k > 1:
                seen_rest.add(tuple(rest))
            parts = [(premise_role, premise_text)]
            parts += [(role, text) for (role, _), text in zip(roles[1:], rest) if text]
            meta = {"variant": variant.index} if self.k == 1 else {"variant": variant.index, "continuation": j}
            rec = build_record(
                pattern=prep.pattern, template=prep.ref, language=prep.language, parts=parts,
                markers=prep.markers, slots={s: plain[s][choice[s]] for s in variant.slots},
                seed=self.seed, index=index, premise_id=pid, split=split, meta=meta)
            out.append((key64(normalise(rec["text"])), split_index, rec))
        return (key64(pid) if self.k > 1 else None), t_index, out


# ---------------------------------------------------------------------------
# Worker processes


_WORKER: dict = {}


def _worker_init(template_names, template_paths, weights, seed, k, splits, as_lines) -> None:
    registry = load_registry(template_paths)
    templates = resolve_templates(template_names, registry)
    _WORKER["drawer"] = Drawer(templates, weights, seed, k, splits)
    _WORKER["as_lines"] = as_lines


@dataclass
class _Block:
    """Drawn units packed into a few flat arrays, so that sending a block between processes is cheap."""

    premise_keys: array | None  # per unit: premise key ('Q'); None when continuations == 1
    sizes: array                # per unit: how many candidates follow ('H')
    keys: array                 # per candidate: dedup key of its text ('Q')
    splits: bytearray           # per candidate: index into the split names
    templates: array            # per candidate: index of its template ('H')
    lines: list | None          # JSONL, per split: the lines of its candidates, back to back (bytes)
    ends: list                  # JSONL, per split: where each of its candidates' lines ends ('Q')
    records: list | None        # Parquet: the records themselves
    spooled: str | None = None  # JSONL from a worker: the file holding ``lines`` (see ``_unspool``)


def _draw_block(start: int, stop: int, spool: str | None = None) -> _Block:
    drawer, as_lines = _WORKER["drawer"], _WORKER["as_lines"]
    premise_keys = array("Q") if drawer.k > 1 else None
    sizes, keys, splits, templates = array("H"), array("Q"), bytearray(), array("H")
    lines: list[list[bytes]] = [[] for _ in drawer.split_names]
    records = [] if not as_lines else None
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for i in range(start, stop):
        pkey, t_index, cands = drawer.unit(i)
        if premise_keys is not None:
            premise_keys.append(pkey)
        sizes.append(len(cands))
        for key, s, rec in cands:
            keys.append(key)
            splits.append(s)
            templates.append(t_index)
            if as_lines:
                lines[s].append(dumps(rec, option=newline))
            else:
                records.append(rec)
    ends = [array("Q", accumulate(map(len, ls))) for ls in lines]
    blobs = [b"".join(ls) for ls in lines]
    if spool is None or not as_lines:
        return _Block(premise_keys, sizes, keys, splits, templates, blobs, ends, records)
    # a worker hands the lines over through a file: cheaper than pickling them through the pool's pipe
    path = os.path.join(spool, f"{start}.jsonl")
    with open(path, "wb") as f:
        f.writelines(blobs)
    return _Block(premise_keys, sizes, keys, splits, templates, None, ends, None, path)


def _unspool(block: _Block) -> _Block:
    """Read back the lines a worker spooled to a file, and delete the file."""
    if block.spooled is not None:
        with open(block.spooled, "rb") as f:
            view = memoryview(f.read())
        os.unlink(block.spooled)
        block.lines, at = [], 0
        for ends in block.ends:
            size = ends[-1] if ends else 0
            block.lines.append(view[at:at + size])
            at += size
        block.spooled = None
    return block


def _blocks(workers: int, drawer: Drawer, as_lines: bool, init_args: tuple, spool: Path,
            units_wanted: Callable[[], int]) -> Iterator[_Block]:
    """Yield blocks of drawn units in order, drawing them in ``workers`` processes.

    ``units_wanted()`` estimates how many more units the run needs; blocks past that estimate are
    not drawn ahead (a short run with two workers draws one block, not four).

    This process and forked workers use ``drawer`` as it is; spawned workers build their own
    from ``init_args``. Workers pass JSONL lines back through files in ``spool`` (an empty folder).
    (Measured: letting this process draw a share of the blocks too, between keeping and writing,
    was slower on 2 cores than leaving it to keep and write.)
    """
    _WORKER.update(drawer=drawer, as_lines=as_lines)
    if workers == 1:
        start = 0
        while True:
            yield _draw_block(start, start + UNITS_PER_BLOCK)
            start += UNITS_PER_BLOCK
    import multiprocessing as mp

    if sys.platform.startswith("linux"):  # fork: workers inherit the loaded templates
        ctx, initargs = mp.get_context("fork"), None
    else:
        ctx, initargs = mp.get_context("spawn"), init_args
    pool = ctx.Pool(workers, initializer=_worker_start, initargs=(initargs,))
    pending: list = []
    try:
        start = consumed = 0
        while True:
            horizon = consumed + units_wanted()
            # a bounded window keeps memory flat; at least one block is always on its way
            while len(pending) < 2 * workers and (not pending or start < horizon):
                pending.append(pool.apply_async(_draw_block, (start, start + UNITS_PER_BLOCK, str(spool))))
                start += UNITS_PER_BLOCK
            block = _unspool(pending.pop(0).get())
            consumed += UNITS_PER_BLOCK
            yield block
    finally:
        _shut_down(pool, pending)


def _worker_start(init_args: tuple | None) -> None:
    """A worker leaves Ctrl-C to the main process, which stops the pool in order (see ``_shut_down``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if init_args is not None:  # spawned: nothing was inherited
        _worker_init(*init_args)


def _shut_down(pool, pending: list, patience: float = 30.0) -> None:
    """Stop the pool once the blocks in flight have arrived (a few milliseconds of work each).

    ``Pool.terminate`` kills workers wherever they are; one killed while sending a block dies
    holding the result queue's lock, and the pool's own shutdown then waits for that lock forever
    (seen here about once in a hundred runs). So: let the blocks arrive, then close and join.
    """
    pool.close()
    deadline = time.monotonic() + patience
    for result in pending:
        result.wait(max(0.0, deadline - time.monotonic()))
    if all(result.ready() for result in pending):
        pool.join()
    else:  # a worker is gone: nothing more will arrive
        pool.terminate()


@dataclass
class _Tally:
    """The sequential decisions: which drawn candidates are kept, and which of those this run writes."""

    lo: int
    hi: int
    write_from: int
    splits: int
    templates: int
    seen: set = field(default_factory=set)
    seen_premises: set = field(default_factory=set)
    kept: int = 0
    idle: int = 0   # consecutive units that added nothing
    split_counts: list = field(default_factory=list)
    template_counts: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.split_counts = [0] * self.splits
        self.template_counts = [0] * self.templates


def _keep(block: _Block, t: _Tally) -> list[list]:
    """Decide the block's candidates in order; return, per split, the lines or records to write.

    The common cases are decided for the whole block with set operations: one candidate per unit
    (no continuations) with a few duplicates at most, or every candidate new. The edges of the
    written range and premises seen before go one candidate at a time (``_keep_each``).
    """
    keys, pkeys, n = block.keys, block.premise_keys, len(block.keys)
    if t.write_from <= t.kept and len(block.sizes):
        if pkeys is None and len(block.sizes) == n:
            drop = _repeats(keys, t.seen)
            if t.kept + n - len(drop) <= t.hi:
                return _keep_all_but(block, t, drop)
        elif (t.kept + n <= t.hi and t.seen.isdisjoint(keys) and len(set(keys)) == n
              and t.seen_premises.isdisjoint(pkeys) and len(set(pkeys)) == len(pkeys)):
            t.seen_premises.update(pkeys)
            return _keep_all_but(block, t, [])
    return _keep_each(block, t)


def _repeats(keys: array, seen: set) -> list[int]:
    """Indexes of the candidates whose key was kept before, in ``seen`` or earlier in ``keys``."""
    unique = set(keys)
    if len(unique) == len(keys) and seen.isdisjoint(unique):
        return []
    clash, here, drop = seen & unique, set(), []
    for j, key in enumerate(keys):
        if key in clash or key in here:
            drop.append(j)
        else:
            here.add(key)
    return drop


def _keep_all_but(block: _Block, t: _Tally, drop: list[int]) -> list[list]:
    """Keep and write every candidate of the block but those in ``drop`` (which must be empty unless
    every unit of the block has one candidate: the idle count below reads drops as units)."""
    n, splits, tmpls = len(block.keys), block.splits, block.templates
    t.seen.update(block.keys)
    t.kept += n - len(drop)
    trailing = 0  # units at the end of the block that added nothing
    while trailing < len(drop) and drop[-1 - trailing] == n - 1 - trailing:
        trailing += 1
    t.idle = t.idle + n if trailing == n else trailing
    for s in range(t.splits):
        t.split_counts[s] += splits.count(s)
    for i in range(t.templates):
        t.template_counts[i] += tmpls.count(i)
    for j in drop:
        t.split_counts[splits[j]] -= 1
        t.template_counts[tmpls[j]] -= 1
    if block.records is not None:
        dropped = set(drop)
        return [[r for j, (r, sp) in enumerate(zip(block.records, splits)) if sp == s and j not in dropped]
                for s in range(t.splits)]
    out: list[list] = []
    for s, (blob, ends) in enumerate(zip(block.lines, block.ends)):
        view, pieces, start = memoryview(blob), [], 0
        for j in drop:
            if splits[j] == s:  # cut out the dropped line: it is this split's candidate number `at`
                at = splits.count(s, 0, j)
                pieces.append(view[start:ends[at - 1] if at else 0])
                start = ends[at]
        pieces.append(view[start:])
        out.append([p for p in pieces if len(p)])
    return out


def _keep_each(block: _Block, t: _Tally) -> list[list]:
    """``_keep`` one candidate at a time: duplicates, the edges of the range, premises seen before."""
    out: list[list] = [[] for _ in range(t.splits)]
    seen, seen_add = t.seen, t.seen.add
    keys, splits, tmpls, pkeys = block.keys, block.splits, block.templates, block.premise_keys
    lines, ends = [memoryview(blob) for blob in block.lines], block.ends
    cursor = [0] * t.splits  # per split: how many of the block's candidates of that split came before
    records = block.records
    split_counts, template_counts = t.split_counts, t.template_counts
    kept, idle, lo, hi, write_from = t.kept, t.idle, t.lo, t.hi, t.write_from
    c = 0
    for u, size in enumerate(block.sizes):
        first, c = c, c + size
        if kept >= hi:
            break
        pkey = pkeys[u] if pkeys is not None else None
        if pkey is not None and pkey in t.seen_premises:
            idle += 1
            for j in range(first, c):
                cursor[splits[j]] += 1
            continue
        added = 0
        for j in range(first, c):
            s = splits[j]
            at = cursor[s]
            cursor[s] += 1
            key = keys[j]
            if key in seen or kept >= hi:
                continue
            seen_add(key)
            added += 1
            if kept >= lo:
                split_counts[s] += 1
                template_counts[tmpls[j]] += 1
                if kept >= write_from:
                    if records is not None:
                        out[s].append(records[j])
                    else:
                        out[s].append(lines[s][ends[s][at - 1] if at else 0:ends[s][at]])
            kept += 1
        if pkey is not None and added:
            t.seen_premises.add(pkey)
        idle = 0 if added else idle + 1
    t.kept, t.idle = kept, idle
    return out


# ---------------------------------------------------------------------------
# Writing


class _JsonlSink:
    """Appends lines to ``data/{split}.jsonl`` and hashes them as they go (the manifest's sha256)."""

    def __init__(self, data_dir: Path, offsets: dict[str, int] | None):
        self.data_dir = data_dir
        self.files: dict = {}
        self.hashes: dict = {}
        for split, size in (offsets or {}).items():  # --resume: keep what was written, hash it again
            f = open(data_dir / f"{split}.jsonl", "r+b")
            f.truncate(size)
            self.files[split], self.hashes[split] = f, sha256_stream(f)  # leaves f at its end, to append

    def write(self, split: str, item: bytes | memoryview) -> None:
        f = self.files.get(split)
        if f is None:
            f = self.files[split] = open(self.data_dir / f"{split}.jsonl", "wb", buffering=1 << 20)
            self.hashes[split] = hashlib.sha256()
        f.write(item)
        self.hashes[split].update(item)

    def write_many(self, split: str, items: list) -> None:
        self.write(split, b"".join(items))

    def digests(self) -> dict[str, str]:
        """sha256 of each file written, by file name."""
        return {f"{split}.jsonl": digest.hexdigest() for split, digest in self.hashes.items()}

    def offsets(self) -> dict[str, int]:
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
        return {s: f.tell() for s, f in self.files.items()}

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class _ParquetSink:
    ROWS = 20_000

    def __init__(self, data_dir: Path):
        self.data_dir, self.writers, self.buffers = data_dir, {}, {}
        self.schema = arrow_schema()

    def write(self, split: str, rec: dict) -> None:
        buf = self.buffers.setdefault(split, [])
        buf.append(to_row(rec))
        if len(buf) >= self.ROWS:
            self._flush(split)

    def _flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self.buffers.get(split)
        if not rows:
            return
        if split not in self.writers:
            self.writers[split] = pq.ParquetWriter(self.data_dir / f"{split}.parquet", self.schema)
        self.writers[split].write_table(pa.Table.from_pylist(rows, schema=self.schema))
        self.buffers[split] = []

    def write_many(self, split: str, items: list) -> None:
        for rec in items:
            self.write(split, rec)

    def offsets(self) -> None:
        return None

    def digests(self) -> dict[str, str]:
        return {}  # Parquet files are finished by their writers: hashed from disk

    def close(self) -> None:
        for split in list(self.buffers):
            self._flush(split)
        for w in self.writers.values():
            w.close()


# ---------------------------------------------------------------------------
# The run


@dataclass
class GenerateResult:
    path: Path
    records: int
    counts: dict
    manifest: dict


def _progress_bar(cfg: GenerateConfig, total: int):
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="rec", unit_scale=True, desc="generate", file=sys.stderr, smoothing=0.1)


def generate(cfg: GenerateConfig, out: str | Path, *, registry: Registry | None = None) -> GenerateResult:
    """Generate the corpus described by ``cfg`` into the folder ``out``."""
    cfg.check()
    out = Path(out)
    weights = cfg.weights()
    registry = registry or load_registry(cfg.template_paths)
    templates = resolve_templates(list(weights), registry)
    drawer = Drawer(templates, list(weights.values()), cfg.seed, cfg.continuations, cfg.splits)  # checks early

    partial = out.parent / f".{out.name}.partial"
    progress_file = partial / "progress.json"
    if out.exists() and not cfg.overwrite:
        raise GenerateError(f"{out} already exists", hint="pass --overwrite to replace it, or choose another --out")
    state = None
    if partial.exists():
        if not cfg.resume:
            raise GenerateError(f"an interrupted run is waiting in {partial}",
                                hint="pass --resume to finish it, or delete that folder to start over")
        if progress_file.is_file():
            state = orjson.loads(progress_file.read_bytes())
            if state.get("fingerprint") != cfg.fingerprint():
                raise GenerateError("--resume was given with different options than the interrupted run",
                                    hint=f"rerun its command: {state.get('command')}")
        if cfg.format == "parquet":
            state = None  # Parquet files cannot be appended to: redo them (same result)

    lo, hi = 0, cfg.n
    if cfg.shard:
        i, count = cfg.shard
        lo, hi = i * cfg.n // count, (i + 1) * cfg.n // count
    written_before = state["written"] if state else 0
    write_from = lo + written_before

    init_args = ([t if not t.endswith((".yaml", ".yml")) else str(Path(t).resolve()) for t in weights],
                 [str(p) for p in cfg.template_paths], list(weights.values()), cfg.seed, cfg.continuations,
                 cfg.splits, cfg.format == "jsonl")
    by_split, by_template, by_pattern = Counter(), Counter(), Counter()
    bar = _progress_bar(cfg, hi - lo)
    if bar:
        bar.update(written_before)

    # an interruption (Ctrl-C, a full disk, a killed worker) leaves the partial run for --resume;
    # a request that cannot be met (GenerateError) leaves nothing
    with atomic_dir(out, keep_partial=lambda e: not isinstance(e, GenerateError)) as tmp:
        data_dir = tmp / "data"
        if state is None and data_dir.exists():
            for f in data_dir.iterdir():
                f.unlink()
        data_dir.mkdir(exist_ok=True)
        spool = tmp / "spool"  # blocks on their way from the workers; gone when the run ends
        shutil.rmtree(spool, ignore_errors=True)
        spool.mkdir()
        sink = (_JsonlSink(data_dir, state["offsets"] if state else None) if cfg.format == "jsonl"
                else _ParquetSink(data_dir))
        tally = _Tally(lo=lo, hi=hi, write_from=write_from, splits=len(cfg.splits), templates=len(templates))
        split_names = list(cfg.splits)
        checkpointed = tally.kept
        try:
            blocks = _blocks(cfg.workers, drawer, cfg.format == "jsonl", init_args, spool,
                             units_wanted=lambda: -(-(hi - tally.kept) // cfg.continuations))
            while tally.kept < hi:
                block = next(blocks)
                written = max(tally.kept, write_from)
                for split_index, items in enumerate(_keep(block, tally)):
                    if items:
                        sink.write_many(split_names[split_index], items)
                if bar:
                    bar.update(max(tally.kept, write_from) - written)
                if tally.idle >= GIVE_UP_AFTER:
                    sizes = ", ".join(f"{t.name}: {t.space_size():,}" for t in templates)
                    raise GenerateError(
                        f"only {tally.kept:,} unique records could be drawn (asked for {cfg.n:,}); the last "
                        f"{GIVE_UP_AFTER:,} draws were all duplicates. Space sizes (variants × slot values): "
                        f"{sizes}", hint="ask for fewer records, or add slot values or variants")
                if (cfg.format == "jsonl" and tally.kept > write_from
                        and tally.kept // CHECKPOINT_EVERY > checkpointed // CHECKPOINT_EVERY):
                    write_atomic(progress_file, orjson.dumps({
                        "fingerprint": cfg.fingerprint(), "command": cfg.command(),
                        "written": tally.kept - lo, "offsets": sink.offsets()}))
                    checkpointed = tally.kept
            blocks.close()
        finally:
            sink.close()
            shutil.rmtree(spool, ignore_errors=True)
            if bar:
                bar.close()
        by_split.update({split_names[i]: c for i, c in enumerate(tally.split_counts) if c})
        per_template = tally.template_counts
        for t, count in zip(templates, per_template):
            by_template[t.ref] += count
            by_pattern[t.pattern.name] += count
        progress_file.unlink(missing_ok=True)
        manifest = _manifest(cfg, templates, data_dir, by_split, by_template, by_pattern, hi - lo, sink.digests())
        write_atomic(tmp / "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        from .card import corpus_summary

        write_atomic(tmp / "README.md", corpus_summary(manifest))
    return GenerateResult(out, hi - lo, dict(by_split), manifest)


def _manifest(cfg, templates, data_dir, by_split, by_template, by_pattern, records, digests) -> dict:
    files = []
    for f in sorted(data_dir.iterdir()):
        split = f.name.split(".")[0]
        files.append({"path": f"data/{f.name}", "split": split, "records": by_split.get(split, 0),
                      "bytes": f.stat().st_size,
                      "sha256": digests[f.name] if f.name in digests else sha256_file(f)})
    patterns = {t.pattern.name: t.pattern for t in templates}
    return {
        "format": "corpusforge.corpus/1",
        "corpusforge_version": __version__,
        "command": cfg.command(),
        "seed": cfg.seed,
        "n": cfg.n,
        "continuations": cfg.continuations,
        "splits": cfg.splits,
        "shard": f"{cfg.shard[0]}/{cfg.shard[1]}" if cfg.shard else None,
        "data_format": cfg.format,
        "mix": cfg.weights(),
        "templates": [{"name": t.name, "version": t.version, "pattern": t.pattern.name, "language": t.language,
                       "source": t.source, "sha256": t.sha256, "markers": t.markers, "space_size": t.space_size()}
                      for t in templates],
        "patterns": [p.to_dict() for p in patterns.values()],
        "counts": {"records": records, "by_split": dict(sorted(by_split.items())),
                   "by_template": dict(sorted(by_template.items())), "by_pattern": dict(sorted(by_pattern.items()))},
        "files": files,
        "seed_policy": "each unit's randomness is blake2b(seed, template name, template version, index); "
                       "splits are assigned by hashing the premise text, so no premise is in two splits",
        "dedup": "exact, on NFKC case-folded text with collapsed white space (implies structural dedup)",
    }
