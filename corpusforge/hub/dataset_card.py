"""The dataset card (README.md) the Hub shows: YAML metadata and a body a reader can use.

(The README inside a corpus folder is ``corpusforge/corpus_readme.py``.)

The generated part of the body sits between two HTML comments. Prose a user
writes outside them — on the Hub or locally — and metadata keys corpusforge
does not set survive the next push.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .._io import read_text
from ..errors import HubError
from ..manifest import Manifest
from .shapes import ShapeOptions

BEGIN = "<!-- corpusforge:begin (generated; edits inside are replaced on the next push) -->"
END = "<!-- corpusforge:end -->"


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    return next((label for bound, label in bounds if n < bound), "100M<n<1B")


def split_card(text: str) -> tuple[dict, str, str]:
    """(metadata, prose before the generated block, prose after it) of an existing card."""
    meta: dict = {}
    body = text
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            try:
                meta = yaml.safe_load(text[3:end]) or {}
            except yaml.YAMLError as e:
                raise HubError(f"the existing dataset card's YAML cannot be read: {e}",
                               hint="fix the card on the Hub, or delete it") from None
            body = text[end + 4:].lstrip("\n")
    if BEGIN in body and END in body:
        before, rest = body.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        return meta, before.strip("\n"), after.strip("\n")
    return meta, "", body.strip("\n")


def _marked(rec: dict) -> str:
    rows = []
    starts = {t["start"]: t["end"] for t in rec["targets"]}
    for seg in rec["segments"]:
        text, piece, i = rec["text"], [], seg["start"]
        while i < seg["end"]:
            if i in starts:
                marker = text[i:starts[i]]
                core = marker.strip()
                lead = marker[: len(marker) - len(marker.lstrip())]
                trail = marker[len(marker.rstrip()):]
                piece.append(f"{lead}**{core}**{trail}" if core else marker)
                i = starts[i]
            else:
                piece.append(text[i])
                i += 1
        shown = "".join(piece).replace("|", "\\|")
        rows.append(f"| {seg['role']} | {shown} |")
    return "\n".join(["| role | text |", "|---|---|", *rows])


def _shape_section(shape: ShapeOptions | None, name: str) -> list[str]:
    """How to load the repository and what its rows hold: records, or a trainer's shape."""
    if shape is None:
        return ["## Load it", "", "```python", "from datasets import load_dataset", "",
                f'ds = load_dataset("{name}")', 'print(ds["train"][0]["text"], ds["train"][0]["segments"])', "```", "",
                "Fields: `id` (content hash), `pattern`, `template` (name@version), `language`, `text`, "
                "`segments` (role spans, character offsets), `targets` (marker spans), `slots` (list of name/value), "
                "`premise_id`, `seed`, `index`, `split`, `meta` (JSON string)."]
    start = ", ".join(shape.completion_from) if shape.completion_from else "the second role"
    row = ('`prompt` (the premise) and `completion` (what follows, from ' + start + '; prompt + completion is the '
           "record's text)") if shape.shape == "prompt-completion" else (
        "`messages`: " + ("a system turn, " if shape.system else "") + "the premise as the user's turn and what "
        f"follows (from {start}) as the assistant's")
    return ["## Load it and train on it", "",
            f"Rows are in the `{shape.shape}` shape TRL's `SFTTrainer` reads: {row}; `id` and `pattern` point back "
            "to the corpusforge record.", "", "```python", "from datasets import load_dataset",
            "from trl import SFTConfig, SFTTrainer", "", f'ds = load_dataset("{name}")',
            'trainer = SFTTrainer(model="your/model", train_dataset=ds["train"], args=SFTConfig(output_dir="out"))',
            "trainer.train()", "```"]


def render_card(manifest: Manifest, stats: dict, examples: dict[str, dict], splits: list[str], *,
                repo_id: str | None, existing: str | None = None, pretty_name: str | None = None,
                license: str | None = None, shape: ShapeOptions | None = None) -> str:
    """The full README.md: metadata, the generated body, and the user's prose from ``existing``."""
    user_meta, before, after = split_card(existing) if existing else ({}, "", "")
    patterns = sorted(stats["by_pattern"])
    meta = dict(user_meta)
    meta.update({
        "pretty_name": pretty_name or user_meta.get("pretty_name") or (repo_id or "corpus").split("/")[-1],
        "language": sorted(stats["by_language"]),
        "task_categories": ["text-generation"],
        "size_categories": [size_category(stats["records"])],
        "tags": sorted(set(user_meta.get("tags") or []) | {"synthetic", "reasoning", "corpusforge", *patterns}
                       | ({shape.shape} if shape else set())),
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}],
    })
    license_ = license or manifest.license or user_meta.get("license")
    if license_:
        meta["license"] = license_
    name = repo_id or "path/to/corpus"
    markers = manifest.markers()
    per = stats["premises"]["continuations_per_premise"]
    d = stats["distinct"]
    lines = [
        BEGIN, "", f"# {meta['pretty_name']}", "",
        "A corpus of **reasoning structures** made with [corpusforge](https://pypi.org/project/corpusforge/). "
        "Each record is one pattern's roles in order (for example *condition → consequence*, or *thesis → "
        "antithesis → conclusion*); there is no single right answer per record. It teaches a way of reasoning — "
        "the structure and its marker words — not facts.", "",
        "## Contents", "",
        f"{stats['records']:,} records in {len(splits)} split(s).", "",
        "| split | records |", "|---|---|", *[f"| {k} | {v:,} |" for k, v in stats["by_split"].items()], "",
        "| pattern | records |", "|---|---|", *[f"| {k} | {v:,} |" for k, v in stats["by_pattern"].items()], "",
        "| template | records |", "|---|---|", *[f"| {k} | {v:,} |" for k, v in stats["by_template"].items()], "",
        "| language | records |", "|---|---|", *[f"| {k} | {v:,} |" for k, v in stats["by_language"].items()], "",
        "## Target markers", "",
        "The words the corpus is meant to strengthen; every occurrence is a `targets` span: "
        + ", ".join(f"`{m!r}`" for m in markers) + ".", "",
        "## One example per pattern", "",
    ]
    for pattern in patterns:
        rec = examples[pattern]
        lines += [f"**{pattern}** (`{rec['template']}`), targets in bold:", "", _marked(rec), ""]
    lines += [
        "## Variety", "",
        f"- distinct-1 / 2 / 3 (share of unique word n-grams): {d['distinct_1']} / {d['distinct_2']} / "
        f"{d['distinct_3']}",
        f"- premises: {stats['premises']['count']:,}; continuations per premise: min {per['min']}, mean "
        f"{per['mean']}, max {per['max']}; premises in more than one split: "
        f"{stats['premises']['leaked_across_splits']}", "",
        "## How it was made", "",
        f"Seed policy: {manifest.seed_policy}. Dedup: {manifest.dedup}.", "",
        "Regenerate it exactly with:", "", "```sh", manifest.command, "```", "",
        "| template | version | pattern | language | sha256 |", "|---|---|---|---|---|",
        *[f"| {t.name} | {t.version} | {t.pattern} | {t.language} | `{t.sha256[:16]}` |" for t in manifest.templates],
        "", f"corpusforge {manifest.corpusforge_version}.", "",
        *_shape_section(shape, name), "", END,
    ]
    body = "\n".join(lines)
    parts = [p for p in (before, body, after) if p]
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
    return f"---\n{front}---\n\n" + "\n\n".join(parts) + "\n"


def check_card(path: Path) -> dict:
    """Parse a card's YAML metadata; raise HubError if it does not parse or lacks what the Hub needs."""
    text = read_text(path, HubError, what="dataset card")
    meta, _, _ = split_card(text)
    if not text.startswith("---") or not isinstance(meta, dict) or "configs" not in meta:
        raise HubError("the staged dataset card has no YAML metadata with configs", file=str(path))
    return meta
