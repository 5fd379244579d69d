"""Drawing blocks of units, in this process or in a pool of workers.

Units are drawn ``UNITS_PER_BLOCK`` at a time. A block packs its candidates into
a few flat arrays (cheap to send between processes); with workers, the JSONL
lines themselves travel through a file in the run's spool folder, which is
cheaper than pickling them through the pool's pipe. Blocks are yielded in
order, whatever order the workers finish them in.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from array import array
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterator

import orjson

from ..templates.registry import load_registry, resolve_templates
from ..templates.sampler import Drawer

UNITS_PER_BLOCK = 1000


_WORKER: dict = {}


def worker_init(template_names, template_paths, weights, seed, k, splits, as_lines) -> None:
    registry = load_registry(template_paths)
    templates = resolve_templates(template_names, registry)
    _WORKER["drawer"] = Drawer(templates, weights, seed, k, splits)
    _WORKER["as_lines"] = as_lines


@dataclass
class Block:
    """Drawn units packed into a few flat arrays, so that sending a block between processes is cheap."""

    premise_keys: array | None  # per unit: premise key ('Q'); None when continuations == 1
    sizes: array                # per unit: how many candidates follow ('H')
    keys: array                 # per candidate: dedup key of its text ('Q')
    splits: bytearray           # per candidate: index into the split names
    templates: array            # per candidate: index of its template ('H')
    lines: list | None          # JSONL, per split: the lines of its candidates, back to back (bytes)
    ends: list                  # JSONL, per split: where each of its candidates' lines ends ('Q')
    records: list | None        # Parquet: the records themselves
    spooled: str | None = None  # JSONL from a worker: the file holding ``lines`` (see ``unspool``)


def draw_block(start: int, stop: int, spool: str | None = None) -> Block:
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
        return Block(premise_keys, sizes, keys, splits, templates, blobs, ends, records)
    # a worker hands the lines over through a file: cheaper than pickling them through the pool's pipe
    path = os.path.join(spool, f"{start}.jsonl")
    with open(path, "wb") as f:
        f.writelines(blobs)
    return Block(premise_keys, sizes, keys, splits, templates, None, ends, None, path)


def unspool(block: Block) -> Block:
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


@dataclass
class DrawCount:
    """How many units were handed to a drawer (this process or a worker), drawn or on their way."""

    units: int = 0


def cores() -> int:
    """The CPU cores this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):   # not Linux
        return os.cpu_count() or 1


def usable_workers(requested: int, units: int) -> int:
    """How many worker processes to start: at most one per core, and one per block of work there is. More would
    only wait for a core, or for nothing (``--workers 100000`` once started every one of them up front); the
    output is the same for any number."""
    return max(1, min(requested, cores(), -(-units // UNITS_PER_BLOCK)))


def blocks(workers: int, drawer: Drawer, as_lines: bool, init_args: tuple, spool: Path,
           units_wanted: Callable[[], int], count: DrawCount | None = None) -> Iterator[Block]:
    """Yield blocks of drawn units in order, drawing them in ``workers`` processes (no more than
    ``usable_workers``: one per core and per block the run needs).

    ``units_wanted()`` estimates how many more units the run needs; blocks past that estimate are
    not drawn ahead (a short run with two workers draws one block, not four).

    This process and forked workers use ``drawer`` as it is; spawned workers build their own
    from ``init_args``. Workers pass JSONL lines back through files in ``spool`` (an empty folder).
    (Measured: letting this process draw a share of the blocks too, between keeping and writing,
    was slower on 2 cores than leaving it to keep and write.)
    """
    count = count if count is not None else DrawCount()
    workers = usable_workers(workers, units_wanted())
    _WORKER.update(drawer=drawer, as_lines=as_lines)
    if workers == 1:
        start = 0
        while True:
            count.units += UNITS_PER_BLOCK
            yield draw_block(start, start + UNITS_PER_BLOCK)
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
                pending.append(pool.apply_async(draw_block, (start, start + UNITS_PER_BLOCK, str(spool))))
                start += UNITS_PER_BLOCK
                count.units += UNITS_PER_BLOCK
            block = unspool(pending.pop(0).get())
            consumed += UNITS_PER_BLOCK
            yield block
    finally:
        _shut_down(pool, pending)


def _worker_start(init_args: tuple | None) -> None:
    """A worker leaves Ctrl-C to the main process, which stops the pool in order (see ``_shut_down``),
    and dies with it: if the main process is killed, a worker would otherwise fail to send its block
    into a broken pipe and print a traceback nobody asked for. The kernel closes a dying process's pipes
    before it signals the children that asked to die with it, so a worker may still write into the closed
    pipe in between: with SIGPIPE's default action (Python ignores it) that write ends the worker silently
    instead of raising BrokenPipeError."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGPIPE"):   # not on Windows
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _die_with_parent()
    if init_args is not None:  # spawned: nothing was inherited
        worker_init(*init_args)


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


def _die_with_parent() -> None:
    """Linux: have the kernel kill this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not available: the pool's own shutdown still applies
        pass
