"""What to generate: ``GenerateConfig``, checked before anything is drawn or written."""

from __future__ import annotations

import hashlib
import math
import shlex

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ..errors import GenerateError
from ..patterns import NAME_RE
from ..records import INT64_MAX, INT64_MIN

DEFAULT_SPLITS = {"train": 0.9, "validation": 0.05, "test": 0.05}


class GenerateConfig(BaseModel):
    """What to generate. The output depends only on the fields marked (*) in their descriptions."""

    model_config = ConfigDict(extra="forbid")

    templates: list[str] = Field(default_factory=list,
                                 description="(*) Template names or .yaml paths, mixed with equal weights.")
    mix: dict[str, float] = Field(default_factory=dict, description="(*) Template name → weight, instead of templates.")
    n: int = Field(default=1000, description="(*) Records in the whole corpus.")
    seed: int = Field(default=0, description="(*) The generation seed.")
    continuations: int = Field(default=1, description="(*) Different continuations per premise (they share "
                                                      "premise_id).")
    splits: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SPLITS),
                                     description="(*) Split shares; a record's split comes from a hash of its premise.")
    format: str = Field(default="jsonl", description="(*) jsonl or parquet.")
    shard: tuple[int, int] | None = Field(default=None, description="(*) (i, N): write only part i of N (0-based).")
    workers: int = Field(default=1, description="Processes drawing records; the output is the same for any number, "
                                                "so more than the machine's cores is lowered to one per core (with a "
                                                "note), not refused, and no more start than there are blocks of "
                                                "1,000 units to draw.")
    resume: bool = Field(default=False, description="Finish an interrupted run of the same command.")
    overwrite: bool = Field(default=False, description="Replace an existing corpus folder (once the new one is done).")
    template_paths: list[str] = Field(default_factory=list, description="Template packs besides the installed ones.")
    progress: bool | None = Field(default=None, description="A progress bar; None: when stderr is a terminal.")
    checkpoint_every: int = Field(default=50_000, description="Records between the checkpoints --resume restarts "
                                                              "from (JSONL only).")

    def weights(self) -> dict[str, float]:
        if self.mix and self.templates:
            raise GenerateError("give either templates or a mix, not both")
        weights = dict(self.mix) if self.mix else {name: 1.0 for name in self.templates}
        if not weights:
            raise GenerateError("no template given", hint="pass --template NAME or --mix NAME=W,...")
        return weights

    def check(self) -> None:
        for name in ("n", "continuations", "workers", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise GenerateError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("n", "seed", "continuations", "workers", "checkpoint_every"):   # records store them as int64
            if not INT64_MIN <= getattr(self, name) <= INT64_MAX:
                raise GenerateError(f"--{name.replace('_', '-')} {getattr(self, name)} is past the 64-bit integer "
                                    f"range ({INT64_MIN} to {INT64_MAX})")
        if self.format not in ("jsonl", "parquet"):
            raise GenerateError(f"--format must be jsonl or parquet, got {self.format!r}")
        self._check_splits()
        for name, w in self.weights().items():
            if not (math.isfinite(w) and w > 0):
                raise GenerateError(f"--mix: the weight of {name!r} must be a positive finite number, got {w}")
        if self.shard is not None:
            i, count = self.shard
            if not (count >= 1 and 0 <= i < count):
                raise GenerateError(f"--shard must be i/N with 0 <= i < N, got {i}/{count}")
            lo, hi = self.record_range()
            if hi <= lo:
                raise GenerateError(f"--shard {i}/{count} of {self.n} record(s) holds no record",
                                    hint=f"use at most {self.n} shards")

    def _check_splits(self) -> None:
        bad = [name for name in self.splits if not NAME_RE.fullmatch(name)]
        if bad:
            raise GenerateError(f"--split: split names must be lower-case letters, digits and _ (starting with a "
                                f"letter), got {bad[0]!r}")
        shares = list(self.splits.values())
        if not shares or not all(math.isfinite(w) and w >= 0 for w in shares) or sum(shares) <= 0:
            raise GenerateError(f"--split needs non-negative finite shares that add up to more than 0, "
                                f"got {self.splits}")

    def record_range(self) -> tuple[int, int]:
        """The records ``[lo, hi)`` of the whole sequence this run writes (all of them unless sharded)."""
        if not self.shard:
            return 0, self.n
        i, count = self.shard
        return i * self.n // count, (i + 1) * self.n // count

    def fingerprint(self) -> str:
        """Identifies the output; a resumed run must match the interrupted one."""
        key = [self.weights(), self.n, self.seed, self.continuations, self.splits, self.format,
               list(self.shard) if self.shard else None]
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
