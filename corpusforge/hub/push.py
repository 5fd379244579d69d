"""Pushing a corpus to the Hugging Face Hub: stage, check, show the plan, upload.

1. Stage the exact repository layout in a local folder: Parquet shards
   ``data/{split}-0000i-of-0000N.parquet`` and the card ``README.md`` (the
   card keeps the prose of the card already on the Hub).
2. Check it: every record valid, the card's YAML parses, and
   ``datasets.load_dataset(staging)`` returns the corpus's rows.
3. Print the plan (files, sizes, sha256). ``dry_run`` stops here.
4. Upload that same folder in one commit, retrying transient errors with
   backoff. A failure leaves the corpus and the staged folder as they are.

The token comes from ``HF_TOKEN`` or the user's Hugging Face login; it is
never printed, logged, or written anywhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson

from .._atomic import atomic_dir, sha256_file, write_atomic
from ..columnar import from_row
from ..corpus import iter_records, read_manifest
from ..errors import HubError
from ..records import Record
from ..stats import compute_stats
from .card import check_card, render_card
from .dataset import split_files, write_parquet_shards

RETRIES = 4
BACKOFF_SECONDS = float(os.environ.get("CORPUSFORGE_TEST_BACKOFF", "1.0"))  # the tests shorten the wait


@dataclass
class PushConfig:
    repo_id: str
    private: bool = False
    revision: str | None = None
    message: str | None = None
    dry_run: bool = False
    license: str | None = None       # recorded in the corpus manifest
    pretty_name: str | None = None
    staging: str | Path | None = None  # default: CORPUS.hub-staging beside the corpus


@dataclass
class PlannedFile:
    path: str
    size: int
    sha256: str


@dataclass
class PushResult:
    staging: Path
    files: list[PlannedFile]
    commit_url: str | None = None
    notes: list[str] = field(default_factory=list)


def _stats_and_examples(corpus_dir: Path) -> tuple[dict, dict[str, dict]]:
    """The corpus statistics and one record per pattern (preferring the training split), in one pass."""
    found: dict[str, dict] = {}

    def remember(records):
        for rec in records:
            old = found.get(rec["pattern"])
            if old is None or (old.get("split") != "train" and rec.get("split") == "train"):
                found[rec["pattern"]] = rec
            yield rec

    return compute_stats(remember(iter_records([corpus_dir]))), found


def stage_repository(corpus_dir: str | Path, staging: str | Path, *, repo_id: str | None,
                     existing_card: str | None = None, pretty_name: str | None = None) -> list[PlannedFile]:
    """Write the repository layout into ``staging`` (atomically) and return the plan."""
    corpus_dir, staging = Path(corpus_dir), Path(staging)
    manifest = read_manifest(corpus_dir)
    if manifest is None:
        raise HubError("not a corpus folder: no manifest.json", file=str(corpus_dir),
                       hint="push a folder made by `corpusforge generate`")
    stats, examples = _stats_and_examples(corpus_dir)
    splits = list(split_files(corpus_dir))
    with atomic_dir(staging) as tmp:
        write_parquet_shards(corpus_dir, tmp / "data")
        card = render_card(manifest, stats, examples, splits, repo_id=repo_id,
                           existing=existing_card, pretty_name=pretty_name)
        write_atomic(tmp / "README.md", card)
    return [PlannedFile(str(p.relative_to(staging)), p.stat().st_size, sha256_file(p))
            for p in sorted(staging.rglob("*")) if p.is_file()]


def check_staging(corpus_dir: Path, staging: Path) -> None:
    """Every record valid, the card parses, and ``datasets`` reads back exactly the corpus's rows."""
    from ..validate import validate_paths

    report = validate_paths([corpus_dir])
    if not report.ok:
        first = "; ".join(str(e) for e in report.errors[:3])
        raise HubError(f"{report.invalid} invalid record(s) in the corpus, e.g. {first}",
                       hint=f"run `corpusforge validate {corpus_dir}`")
    check_card(staging / "README.md")
    import datasets

    cache = tempfile.mkdtemp(prefix="corpusforge-check-")
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    try:
        loaded = datasets.load_dataset(str(staging), cache_dir=cache)
        for split, files in split_files(corpus_dir).items():
            if split not in loaded:
                raise HubError(f"datasets did not find split {split!r} in the staged folder", file=str(staging))
            expected = iter_records(files)
            count = 0
            for row in loaded[split]:
                want = next(expected, None)
                got = from_row(row)
                if want is None or Record.model_validate(got) != Record.model_validate(want):
                    raise HubError(f"the staged Parquet of split {split!r} differs from the corpus at row {count}",
                                   file=str(staging))
                count += 1
            if next(expected, None) is not None:
                raise HubError(f"the staged Parquet of split {split!r} has fewer rows than the corpus",
                               file=str(staging))
        loaded.cleanup_cache_files()
        del loaded
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if bars:
            datasets.utils.logging.enable_progress_bar()


def _token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _existing_card(api, repo_id: str, revision: str | None, token: str | None) -> tuple[str | None, str | None]:
    """The README.md on the Hub now, or None; and a note when it could not be read."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision, token=token)
        return Path(path).read_text(encoding="utf-8"), None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        return None, None
    except HfHubHTTPError as e:
        if _status(e) in (401, 403):
            raise
        return None, f"could not read the card on the Hub ({_scrub(str(e).splitlines()[0], token)}); prose there " \
                     "would not be kept"
    except Exception as e:  # connection errors: OSError, or httpx's transport errors
        if not _is_transport_error(e):
            raise
        return None, f"could not reach the Hub to read its card ({type(e).__name__}); prose there would not be kept"


def _is_transport_error(e: BaseException) -> bool:
    """Connection-level failures: OSError, or httpx's transport errors (which are not OSError)."""
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("httpx", "httpcore")


def _auth_error(repo_id: str, status: int | None) -> HubError:
    return HubError(f"the Hub refused the token ({status}): it is missing, invalid, or cannot write to {repo_id}",
                    hint="set HF_TOKEN to a token with write access, or run `hf auth login`")


def _with_retries(action: Callable, what: str, token: str | None, echo: Callable[[str], None]):
    from huggingface_hub.errors import HfHubHTTPError

    delay = BACKOFF_SECONDS
    for attempt in range(1, RETRIES + 1):
        try:
            return action()
        except HfHubHTTPError as e:
            status = _status(e)
            if status in (401, 403):
                raise
            transient = status is None or status >= 500 or status == 429
            reason = _scrub(str(e).splitlines()[0], token)
        except Exception as e:  # connection refused, reset, timed out
            if not _is_transport_error(e):
                raise
            transient, reason = True, f"{type(e).__name__}: {_scrub(str(e), token)}"
        if not transient or attempt == RETRIES:
            raise HubError(f"{what} failed after {attempt} attempt(s): {reason}")
        echo(f"{what} failed ({reason}); retrying in {delay:.0f} s ({attempt}/{RETRIES - 1})")
        time.sleep(delay)
        delay *= 2


def push_corpus(corpus_dir: str | Path, cfg: PushConfig, *, echo: Callable[[str], None] = print) -> PushResult:
    corpus_dir = Path(corpus_dir)
    if "/" not in cfg.repo_id or cfg.repo_id.count("/") != 1 or not all(cfg.repo_id.split("/")):
        raise HubError(f"--repo must be OWNER/NAME, got {cfg.repo_id!r}")
    manifest = read_manifest(corpus_dir)
    if manifest is None:
        raise HubError("not a corpus folder: no manifest.json", file=str(corpus_dir),
                       hint="push a folder made by `corpusforge generate`")
    if cfg.license and manifest.get("license") != cfg.license:
        manifest["license"] = cfg.license
        write_atomic(corpus_dir / "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    staging = Path(cfg.staging) if cfg.staging else corpus_dir.parent / f"{corpus_dir.name}.hub-staging"
    token = _token()
    if token is None and not cfg.dry_run:
        raise HubError("no Hugging Face token", hint="set HF_TOKEN, or run `hf auth login`")

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    result = PushResult(staging, [])
    try:
        existing, note = _existing_card(api, cfg.repo_id, cfg.revision, token) if token else (None, None)
    except HfHubHTTPError as e:
        raise _auth_error(cfg.repo_id, _status(e)) from None
    if note:
        result.notes.append(note)
        echo(f"note: {note}")
    if not manifest.get("license"):
        echo("note: no license is recorded; pass --license (e.g. cc-by-4.0) to set it in the manifest and card")

    echo(f"staging {corpus_dir} → {staging}")
    result.files = stage_repository(corpus_dir, staging, repo_id=cfg.repo_id, existing_card=existing,
                                    pretty_name=cfg.pretty_name)
    echo("checking the staged folder (records, card, datasets.load_dataset)")
    check_staging(corpus_dir, staging)
    echo(f"plan: {len(result.files)} file(s) to {cfg.repo_id}" + (f" @ {cfg.revision}" if cfg.revision else ""))
    for f in result.files:
        echo(f"  {f.path:<48} {f.size:>12,} bytes  sha256 {f.sha256}")
    if cfg.dry_run:
        echo("dry run: nothing uploaded")
        return result

    message = cfg.message or f"corpusforge: {manifest['counts']['records']:,} records"
    try:
        _with_retries(lambda: api.create_repo(cfg.repo_id, repo_type="dataset", private=cfg.private,
                                              exist_ok=True), "creating the repository", token, echo)
        if cfg.revision and cfg.revision != "main":
            _with_retries(lambda: api.create_branch(cfg.repo_id, branch=cfg.revision, repo_type="dataset",
                                                    exist_ok=True), "creating the branch", token, echo)
        info = _with_retries(lambda: api.upload_folder(
            folder_path=str(staging), repo_id=cfg.repo_id, repo_type="dataset", revision=cfg.revision,
            commit_message=message, delete_patterns=["data/*"]), "uploading", token, echo)
    except HfHubHTTPError as e:
        if _status(e) in (401, 403):
            raise _auth_error(cfg.repo_id, _status(e)) from None
        raise HubError(_scrub(str(e).splitlines()[0], token)) from None
    except HubError as e:
        raise HubError(f"{e.message}. Nothing local changed: the corpus {corpus_dir} and the staged upload "
                       f"{staging} are intact", hint="run the same command again to retry") from None
    result.commit_url = getattr(info, "commit_url", None)
    echo(f"pushed: {result.commit_url}")
    return result
