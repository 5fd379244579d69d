"""A model-written corpus: the templates draw each record's premise and its marker, a writer writes the rest.

Record ``i`` is drawn as ``generate`` draws it (same seed policy, same split by premise); the roles before the
last, and the last role up to and including its marker, are kept; the writer continues from there under the
``Clause`` constraint. Every answer is parsed back into the pattern's roles and kept only when it is a clause,
the record meets the record contract, the pattern's detector finds the pattern in it, and its text is neither
a duplicate nor a near-duplicate of one kept before; otherwise it is refused and counted by reason. Answers come
from the cache first (``write.cache``), so a second run is byte-identical without asking the model.
"""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .._atomic import atomic_dir, sha256_file
from .._io import check_output
from .._version import __version__
from ..draw import normalise
from ..errors import GenerateError
from ..generate.config import DEFAULT_SPLITS, GenerateConfig
from ..generate.describe import SEED_POLICY, describe, pattern_entries, template_entries
from ..generate.run import template_inputs
from ..manifest import Counts, DataFile, Manifest
from ..neardup import NearDuplicates
from ..records import Record, build_record, structural_errors
from ..stats import compute_stats
from ..templates.detect import Detector
from ..templates.registry import load_registry, resolve_templates
from ..templates.sampler import Drawer
from .cache import WriteCache, answers_for, cache_key, default_cache
from .constraint import Clause, cyrillic_share
from .writers import Ask, Sampling, make_writer

CHUNK_BATCHES = 4     # premises drawn (and answers cached) per step: this many writer batches

DEDUP = ("exact, on NFKC case-folded text with collapsed white space; and near-duplicates (word 3-gram Jaccard "
         ">= 0.8, MinHash LSH then exact) of a record kept before")


class WriteConfig(BaseModel):
    """A model-written corpus. The output depends on every field but ``progress``, ``concurrency``, ``cache``
    and ``overwrite``."""

    model_config = ConfigDict(extra="forbid")

    writer: str = Field(description="embedded | hf:ID_OR_FOLDER | openai:BASE_URL[#MODEL] | "
                                    "openai-chat:BASE_URL[#MODEL]")
    templates: list[str] = Field(default_factory=list, description="Template names, mixed with equal weights.")
    mix: dict[str, float] = Field(default_factory=dict, description="Template name → weight, instead of templates.")
    n: int = Field(default=1000, description="Records in the corpus.")
    seed: int = Field(default=0, description="The seed: which premises are drawn, and each answer's random stream.")
    splits: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SPLITS), description="Split shares.")
    temperature: float = Field(default=0.9, gt=0, le=5, description="The writer's sampling temperature.")
    top_p: float = Field(default=0.95, gt=0, le=1, description="The writer's nucleus (top-p) mass.")
    min_words: int = Field(default=4, ge=1, le=200, description="The written clause's least words.")
    max_words: int = Field(default=24, ge=1, le=200, description="The written clause's most words.")
    max_new_tokens: int = Field(default=64, ge=1, le=4096, description="Tokens a writer may spend on a clause.")
    batch_size: int = Field(default=32, ge=1, le=4096, description="Prompts a local writer decodes together "
                                                                    "(the cache is written after every 4).")
    concurrency: int = Field(default=4, ge=1, le=256, description="Requests in flight to a server writer.")
    engine: Literal["auto", "xgrammar", "mask"] | None = Field(
        default=None, description="How a local writer forces the structure: auto (the default: our own token mask "
                                  "for a clause after opening words, measured faster; xgrammar for a role that "
                                  "opens with a slot), xgrammar (the grammar library for all) or mask (ours for "
                                  "all; no role that opens with a slot). A server uses its own guided decoding.")
    cache: str | None = Field(default=None, description="The writers' cache folder (default: the user cache).")
    offline: bool = Field(default=False, description="Use only the cache; say what is missing.")
    min_distinct_2: float = Field(default=0.0, ge=0, le=1, description="Refuse to finish below this distinct-2.")
    max_near_dup: float = Field(default=1.0, ge=0, le=1, description="Refuse to finish when a larger share of the "
                                                                      "structured answers were near-duplicates.")
    prompts: str | None = Field(default=None, description="Write whole records answering prompts: 'pool' (the "
                                                            "built-in pool, 1,000+ prompts in English and in "
                                                            "Russian) or a .jsonl of {prompt, language}.")
    overwrite: bool = Field(default=False, description="Replace an existing corpus folder.")
    template_paths: list[str] = Field(default_factory=list, description="Template packs besides the installed ones.")
    progress: bool | None = Field(default=None, description="A progress bar; None: when stderr is a terminal.")

    def generation(self) -> GenerateConfig:
        return GenerateConfig(templates=self.templates, mix=self.mix, n=self.n, seed=self.seed, splits=self.splits,
                              template_paths=self.template_paths)

    def sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_p, self.max_new_tokens)

    def clause(self) -> Clause:
        if self.min_words > self.max_words:
            raise GenerateError(f"--min-words {self.min_words} is more than --max-words {self.max_words}")
        return Clause(self.min_words, self.max_words)

    def command(self) -> str:
        parts = ["corpusforge", "generate", "--writer", self.writer]
        parts += ["--mix", ",".join(f"{k}={v:g}" for k, v in self.generation().weights().items())]
        parts += ["--n", str(self.n), "--seed", str(self.seed),
                  "--split", ",".join(f"{k}={v:g}" for k, v in self.splits.items()),
                  "--temperature", f"{self.temperature:g}", "--top-p", f"{self.top_p:g}",
                  "--min-words", str(self.min_words), "--max-words", str(self.max_words),
                  "--max-new-tokens", str(self.max_new_tokens)]
        parts += ["--prompts", self.prompts] if self.prompts else []
        parts += ["--engine", self.engine] if self.engine else []
        return " ".join(shlex.quote(p) for p in parts)


@dataclass
class Premise:
    """What the templates give a record: its roles up to the writer's part, and where the writer starts."""

    index: int
    record: dict          # the template's own record (its last role the writer replaces)
    given: list           # (role, text) pairs kept as they are; the last is the opening of the written role
    prompt: str


def premise_of(index: int, record: dict) -> Premise | None:
    """The record's roles up to and including the marker that opens its last role; None when the last role
    carries no marker (nothing tells the writer's part apart then)."""
    last = record["segments"][-1]
    inside = [t for t in record["targets"] if last["start"] <= t["start"] < last["end"]]
    if not inside:
        return None
    opening = record["text"][last["start"]:inside[0]["end"]]
    given = [(s["role"], s["text"]) for s in record["segments"][:-1]] + [(last["role"], opening)]
    return Premise(index, record, given, "".join(text for _, text in given))


@dataclass
class Tally:
    kept: int = 0
    asked: int = 0        # answers the writer was asked for in this run (not in the cache)
    cached: int = 0
    judged: int = 0       # answers judged: each is refused (with its reason) or kept, or kept for none (past n)
    near_duplicates: int = 0
    structured: int = 0   # answers that passed the clause, contract and detector checks (duplicates among them)
    refused: Counter = field(default_factory=Counter)


def other_script(premise: str, answer: str, *, least: float = 0.8) -> bool:
    """Whether ``answer`` is written in another script than ``premise`` (Cyrillic or not): less than ``least``
    of its letters in the premise's script."""
    cyrillic = cyrillic_share(premise) >= 0.5
    share = cyrillic_share(answer)
    return (share if cyrillic else 1.0 - share) < least


class _Judge:
    """Turns an answer into a record, or a reason to refuse it."""

    def __init__(self, clause: Clause, templates, identity: dict):
        self.clause, self.detector = clause, Detector(templates)
        self.markers = {t.ref: tuple(t.markers) for t in templates}
        self.patterns = {t.pattern.name: t.pattern for t in templates}
        self.identity = identity
        self.seen: set[str] = set()
        self.near, self.near_answers = NearDuplicates(), NearDuplicates()   # whole texts; the written parts

    def record(self, premise: Premise, answer: str | None, tally: Tally) -> dict | None:
        tally.judged += 1
        reason = "no answer" if answer is None else self.clause.problem(answer)
        if reason is None and other_script(premise.prompt, answer):
            reason = "another script than the premise's"
        if reason is None and normalise(premise.given[0][1])[:40] in normalise(answer):
            reason = "repeats the premise"
        if reason is None:
            rec = premise.record
            parts = premise.given[:-1] + [(premise.given[-1][0], premise.given[-1][1] + answer)]
            given_text = premise.prompt
            slots = {k: v for k, v in rec["slots"].items() if v in given_text}
            out = build_record(pattern=rec["pattern"], template=rec["template"], language=rec["language"],
                               parts=parts, markers=self.markers[rec["template"]], slots=slots, seed=rec["seed"],
                               index=rec["index"], premise_id=rec["premise_id"], split=rec["split"],
                               meta={"writer": self.identity["model"], "written": parts[-1][0]})
            reason = self.unsound(out)
        if reason is None:
            return self.admit(out, answer, tally)
        tally.refused[reason] += 1
        return None

    def admit(self, rec: dict, written: str, tally: Tally) -> dict | None:
        """A structured record, kept unless it (or its ``written`` words) repeats or nearly repeats one kept
        before."""
        tally.structured += 1
        key = normalise(rec["text"])
        if key in self.seen:
            tally.refused["duplicate"] += 1
        elif self.near.seen(rec["text"]) or self.near_answers.seen(written):
            tally.refused["near-duplicate"] += 1
            tally.near_duplicates += 1
        else:
            self.seen.add(key)
            return rec
        return None

    def unsound(self, rec: dict) -> str | None:
        try:
            model = Record.model_validate(rec)
        except ValueError:
            return "breaks the record contract"
        if structural_errors(model, self.patterns):
            return "breaks the record contract"
        if not self.detector.realises(rec["text"], rec["pattern"]):
            return "the detector does not find the pattern"
        return None


@dataclass
class WriteResult:
    path: Path
    records: int
    counts: dict
    manifest: Manifest
    tally: Tally


def _templates(cfg: WriteConfig):
    weights = cfg.generation().weights()
    templates = resolve_templates(list(weights), load_registry(cfg.template_paths))
    if cfg.prompts:
        return weights, templates           # answers to prompts need skeletons instead (answer.check_templates)
    for t in templates:
        probe = premise_of(0, Drawer([t], [1.0], cfg.seed, 1, {"train": 1.0}).unit(0).candidates[0].record)
        if probe is None:
            raise GenerateError(f"template {t.ref} cannot be model-written: its last role carries no target marker "
                                f"({t.markers}) for the writer to continue from",
                                hint="choose templates whose last role opens with a marker (if_then, "
                                     "paradox_conclusion, ...)")
    return weights, templates


def _answering(cfg: WriteConfig, templates, weights, judge: _Judge, writer, cache: WriteCache, clause: Clause,
               tally: Tally):
    """The chunk function for records answering the prompt pool, and the manifest's words on it."""
    from ..prompts import pool_path, read_pool
    from . import answer

    path = pool_path(cfg.prompts)
    pool = read_pool(path)
    prompts = answer.Prompts(pool, cfg.seed)
    prompts.check({t.language for t in templates}, str(path))
    forms = getattr(writer, "engine", None) != "mask"      # a grammar (ours cannot) writes roles that open with a slot
    drafter = answer.Drafter(answer.check_templates(templates, forms), list(weights.values()), prompts, cfg.seed,
                             cfg.splits)
    mode = {"mode": answer.MODE, "prompts": {"source": cfg.prompts, "count": len(pool),
                                             "sha256": sha256_file(path)}}
    return answer.answered(drafter, judge, writer, cache, cfg, clause, tally), mode


def _progress(cfg: WriteConfig):
    if not (cfg.progress if cfg.progress is not None else sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.n, unit="rec", desc="write", file=sys.stderr, smoothing=0.1)


def _premised(drawer: Drawer, judge: _Judge, writer, cache: WriteCache, cfg: WriteConfig, tally: Tally):
    """The chunk function of ``_collect`` for records whose last role the writer completes: the premises of
    records ``start`` … ``start + count``, their answers, and the records kept."""
    identity, constraint, sampling = judge.identity, judge.clause.spec(), asdict(cfg.sampling())

    def chunk(start: int, count: int) -> list[dict]:
        premises = [premise_of(i, drawer.unit(i).candidates[0].record) for i in range(start, start + count)]
        premises = [p for p in premises if p is not None]
        asks = [Ask(p.prompt, cache_key(identity, p.prompt, constraint, sampling, f"{cfg.seed}:{p.index}"))
                for p in premises]
        answers = answers_for(asks, [p.index for p in premises], writer, cache, cfg.offline, tally)
        return [rec for rec in (judge.record(p, a, tally) for p, a in zip(premises, answers)) if rec is not None]

    return chunk


def _collect(cfg: WriteConfig, chunk: Callable[[int, int], list[dict]], tally: Tally,
             observe: Callable[[int], None] | None) -> list[dict]:
    """Draw records in index order, a chunk at a time, and keep those that pass, until ``n`` are kept."""
    kept, index, limit = [], 0, cfg.n * 4 + 256
    bar = _progress(cfg)
    try:
        while len(kept) < cfg.n:
            if index >= limit:
                raise GenerateError(f"only {len(kept)} of {cfg.n} records could be written from {index} premises; "
                                    f"refused: {_reasons(tally)}",
                                    hint="loosen --min-words/--max-words, raise --max-new-tokens, or ask for fewer")
            want = min(CHUNK_BATCHES * cfg.batch_size, limit - index,   # the last chunks: what is still
                       2 * (cfg.n - len(kept)) + 8)                       # missing, with room for refusals
            kept += chunk(index, want)[:cfg.n - len(kept)]
            index += want
            tally.kept = len(kept)
            if bar:
                bar.n = len(kept)
                bar.set_postfix(refused=f"{sum(tally.refused.values()) / max(1, tally.judged):.0%}")
                bar.refresh()
            if observe:
                observe(len(kept))
    finally:
        if bar:
            bar.close()
    return kept


def _reasons(tally: Tally) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in tally.refused.most_common()) or "none"


def _gate(cfg: WriteConfig, records: list[dict], tally: Tally) -> dict:
    stats = compute_stats(records)
    distinct2 = stats["distinct"]["distinct_2"]
    if distinct2 < cfg.min_distinct_2:
        raise GenerateError(f"the corpus's distinct-2 is {distinct2:.3f}, below --min-distinct-2 "
                            f"{cfg.min_distinct_2:.3f} by {cfg.min_distinct_2 - distinct2:.3f}",
                            hint="raise --temperature, mix more templates, or lower the bound")
    share = tally.near_duplicates / tally.structured if tally.structured else 0.0
    if share > cfg.max_near_dup:
        raise GenerateError(f"{share:.1%} of the structured answers were near-duplicates, above --max-near-dup "
                            f"{cfg.max_near_dup:.1%} by {share - cfg.max_near_dup:.1%}",
                            hint="raise --temperature or --top-p, or lower the bound")
    return {"distinct_2": distinct2, "near_duplicate_share": round(share, 4)}


def _manifest(cfg: WriteConfig, weights, templates, data_dir: Path, records: list[dict], writer_entry: dict):
    by = {k: Counter(r[k] for r in records) for k in ("split", "template", "pattern")}
    counts = Counts(records=len(records), by_split=dict(sorted(by["split"].items())),
                    by_template=dict(sorted(by["template"].items())), by_pattern=dict(sorted(by["pattern"].items())))
    files = [DataFile(path=f"data/{f.name}", split=f.stem, records=by["split"][f.stem], bytes=f.stat().st_size,
                      sha256=sha256_file(f)) for f in sorted(data_dir.iterdir())]
    return Manifest(
        corpusforge_version=__version__, command=cfg.command(), seed=cfg.seed, n=cfg.n, continuations=1,
        splits=cfg.splits, data_format="jsonl", mix=weights,
        templates=template_entries(templates), patterns=pattern_entries(templates), counts=counts, files=files,
        dedup=DEDUP,
        seed_policy=SEED_POLICY + "; each answer's random stream is keyed by (seed, record index)",
        writer=writer_entry)


def write_corpus(cfg: WriteConfig, out: str | Path, *, observe: Callable[[int], None] | None = None) -> WriteResult:
    """Write the model-written corpus ``cfg`` describes into the folder ``out``."""
    gen = cfg.generation()
    gen.check()
    clause, out = cfg.clause(), Path(out)
    weights, templates = _templates(cfg)
    cache_root = Path(cfg.cache) if cfg.cache else default_cache()
    check_output(out, GenerateError, overwrite=cfg.overwrite,
                 inputs=[*template_inputs(cfg.template_paths, templates), cache_root])
    writer = make_writer(cfg.writer, cfg.sampling(), clause, concurrency=cfg.concurrency, batch_size=cfg.batch_size,
                         engine=cfg.engine)
    cache = WriteCache(cache_root)
    judge, tally = _Judge(clause, templates, writer.identity), Tally()
    if cfg.prompts:
        chunk, mode = _answering(cfg, templates, weights, judge, writer, cache, clause, tally)
    else:
        drawer = Drawer(templates, list(weights.values()), cfg.seed, 1, cfg.splits)
        chunk, mode = _premised(drawer, judge, writer, cache, cfg, tally), {}
    records = _collect(cfg, chunk, tally, observe)
    gates = _gate(cfg, records, tally)
    entry = {"identity": writer.identity, "sampling": asdict(cfg.sampling()), "constraint": clause.spec(), **mode,
             "asked": tally.asked, "from_cache": tally.cached, "refused": dict(tally.refused.most_common()), **gates}
    with atomic_dir(out) as tmp:
        data_dir = tmp / "data"
        data_dir.mkdir()
        for split in sorted({r["split"] for r in records}):
            (data_dir / f"{split}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records
                                                              if r["split"] == split))
        manifest = _manifest(cfg, weights, templates, data_dir, records, entry)
        describe(tmp, manifest)
    return WriteResult(out, len(records), dict(manifest.counts.by_split), manifest, tally)
