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

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .._env import check_endpoint, check_hub_environment, check_token
from .._io import check_output
from ..errors import HubError
from ..manifest import read_manifest, write_manifest
from .shapes import ShapeOptions, check_completion_from, corpus_pattern_list
from .stage import STAGING_MARK, PlannedFile, check_staging, stage_repository


@dataclass
class PushConfig:
    repo_id: str
    private: bool = False
    revision: str | None = None
    message: str | None = None
    dry_run: bool = False
    license: str | None = None       # written into the card; after a real push, also into the corpus manifest
    pretty_name: str | None = None
    staging: str | Path | None = None  # default: CORPUS.hub-staging beside the corpus
    overwrite: bool = False            # replace an existing --staging folder that push did not make
    retries: int = 4                   # attempts per request on transient errors (5xx, 429, connection)
    retry_wait: float = 1.0            # seconds before the first retry; doubled after each
    shape: ShapeOptions | None = None  # push rows in a trainer's shape (prompt-completion, messages) instead


@dataclass
class PushResult:
    staging: Path
    files: list[PlannedFile]
    commit_url: str | None = None
    notes: list[str] = field(default_factory=list)


def _token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _existing_card(api, repo_id: str, revision: str | None, token: str | None) -> tuple[str | None, str | None]:
    """The README.md on the Hub now, or None; and a note when it could not be read. One request, not
    ``hf_hub_download``: that one retries a connection error with its own back-off (23 s of waiting before our
    ``--retries`` and ``--retry-wait`` even start)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    try:
        url = hf_hub_url(repo_id, "README.md", repo_type="dataset", revision=revision, endpoint=api.endpoint)
        response = get_session().get(url, headers=build_hf_headers(token=token), follow_redirects=True)
        if response.status_code == 404:      # no such repository, revision or file: a first push
            return None, None
        hf_raise_for_status(response)
        return response.content.decode("utf-8"), None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        return None, None
    except HfHubHTTPError as e:
        if _status(e) in (401, 403):
            raise
        return None, f"could not read the card on the Hub ({_scrub(str(e).splitlines()[0], token)}); prose there " \
                     "would not be kept"
    except Exception as e:  # connection errors
        from huggingface_hub.errors import OfflineModeIsEnabled

        if isinstance(e, OfflineModeIsEnabled):
            raise _offline_error() from None
        if not _is_transport_error(e):
            raise
        return None, f"could not reach the Hub to read its card ({type(e).__name__}); prose there would not be kept"


def _transport_errors() -> tuple[type, ...]:
    """Connection-level failures of the HTTP client huggingface_hub uses: its ``TransportError``
    (httpx2, httpx) — found from the client module of ``huggingface_hub.errors.HTTPError`` — and
    OSError (requests' errors are OSErrors)."""
    import importlib

    from huggingface_hub import errors

    client = importlib.import_module(errors.HTTPError.__module__.split(".")[0])
    transport = getattr(client, "TransportError", None)
    return (OSError, transport) if isinstance(transport, type) else (OSError,)


def _is_transport_error(e: BaseException) -> bool:
    return isinstance(e, _transport_errors())


def _offline_error() -> HubError:
    return HubError("the Hub is unreachable: offline mode is on (HF_HUB_OFFLINE)",
                    hint="unset HF_HUB_OFFLINE to push, or pass --dry-run to stage and check only")


def _auth_error(repo_id: str, status: int | None) -> HubError:
    return HubError(f"the Hub refused the token ({status}): it is missing, invalid, or cannot write to {repo_id}",
                    hint="set HF_TOKEN to a token with write access, or run `hf auth login`")


def _with_retries(action: Callable, what: str, cfg: PushConfig, token: str | None, echo: Callable[[str], None]):
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    delay = cfg.retry_wait
    for attempt in range(1, cfg.retries + 1):
        try:
            return action()
        except OfflineModeIsEnabled:
            raise _offline_error() from None
        except HfHubHTTPError as e:
            status = _status(e)
            if status in (401, 403):
                raise
            transient = status is None or status >= 500 or status == 429
            reason = _scrub(str(e).splitlines()[0], token)
        except Exception as e:  # connection refused, reset, timed out
            if not _is_transport_error(e):
                raise
            transient, reason = True, f"{type(e).__name__}: {_scrub(str(e).splitlines()[0] if str(e) else '', token)}"
        if not transient or attempt >= cfg.retries:
            raise HubError(f"{what} failed after {attempt} attempt(s): {reason}")
        echo(f"{what} failed ({reason}); retrying in {delay:g} s ({attempt}/{cfg.retries - 1})")
        time.sleep(delay)
        delay *= 2


def _check_config(cfg: PushConfig) -> None:
    if cfg.repo_id.count("/") != 1 or not all(cfg.repo_id.split("/")):
        raise HubError(f"--repo must be OWNER/NAME, got {cfg.repo_id!r}")
    if cfg.shape is not None:
        cfg.shape.check()
    if cfg.retries < 1 or not cfg.retry_wait >= 0:
        raise HubError(f"--retries must be at least 1 and --retry-wait at least 0, got {cfg.retries} and "
                       f"{cfg.retry_wait}")


def _upload(api, staging: Path, cfg: PushConfig, message: str, token: str | None, echo: Callable[[str], None]):
    """Create the repository (and branch) and upload the staged folder in one commit; returns the commit info."""
    _with_retries(lambda: api.create_repo(cfg.repo_id, repo_type="dataset", private=cfg.private, exist_ok=True),
                  "creating the repository", cfg, token, echo)
    if cfg.revision and cfg.revision != "main":
        _with_retries(lambda: api.create_branch(cfg.repo_id, branch=cfg.revision, repo_type="dataset",
                                                exist_ok=True), "creating the branch", cfg, token, echo)
    return _with_retries(lambda: api.upload_folder(
        folder_path=str(staging), repo_id=cfg.repo_id, repo_type="dataset", revision=cfg.revision,
        commit_message=message, delete_patterns=["data/*"], ignore_patterns=[STAGING_MARK]), "uploading", cfg,
        token, echo)


def check_staging_folder(staging: Path, corpus_dir: Path, overwrite: bool) -> None:
    """The staging folder follows the rule of every output: never the corpus (nor inside it, nor holding it); an
    existing folder is replaced only when an earlier push made it (it holds STAGING_MARK) or with --overwrite."""
    import os

    check_output(staging, HubError, overwrite=True, inputs=[corpus_dir], option="--staging")
    ours = os.path.isdir(staging) and os.path.isfile(staging / STAGING_MARK) and not os.path.islink(staging)
    if os.path.lexists(staging) and not ours and not overwrite:
        raise HubError(f"--staging {staging} already exists and was not made by corpusforge push",
                       hint="pass --overwrite to replace it, or choose another --staging")


def push_corpus(corpus_dir: str | Path, cfg: PushConfig, *, echo: Callable[[str], None] = print) -> PushResult:
    """Stage, check, print the plan and (unless ``dry_run``) upload ``corpus_dir`` as a dataset repository."""
    check_endpoint(HubError)   # before huggingface_hub is imported: it parses HF_ENDPOINT then
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    corpus_dir = Path(corpus_dir)
    _check_config(cfg)
    manifest = read_manifest(corpus_dir)
    if manifest is None:
        raise HubError("not a corpus folder: no manifest.json", file=str(corpus_dir),
                       hint="push a folder made by `corpusforge generate`")
    if cfg.shape is not None:
        check_completion_from(cfg.shape.completion_from, corpus_pattern_list(corpus_dir))
    staging = Path(cfg.staging) if cfg.staging else corpus_dir.parent / f"{corpus_dir.name}.hub-staging"
    check_staging_folder(staging, corpus_dir, cfg.overwrite)
    token = _token()
    if token is None and not cfg.dry_run:
        raise HubError("no Hugging Face token", hint="set HF_TOKEN, or run `hf auth login`")
    if token is not None:   # the Hub will be asked (for its card, or to upload): its settings must hold
        check_token(token, HubError)
        check_hub_environment(HubError)
    api = HfApi(token=token)
    result = PushResult(staging, [])
    try:
        existing, note = _existing_card(api, cfg.repo_id, cfg.revision, token) if token else (None, None)
    except HfHubHTTPError as e:
        raise _auth_error(cfg.repo_id, _status(e)) from None
    if note:
        result.notes.append(note)
        echo(f"note: {note}")
    license_ = cfg.license or manifest.license
    if not license_:
        echo("note: no license is recorded; pass --license (e.g. cc-by-4.0) to set it in the card and manifest")

    echo(f"staging {corpus_dir} → {staging}")
    result.files = stage_repository(corpus_dir, staging, repo_id=cfg.repo_id, existing_card=existing,
                                    pretty_name=cfg.pretty_name, license=license_, shape=cfg.shape)
    echo("checking the staged folder (records, card, datasets.load_dataset)")
    check_staging(corpus_dir, staging, cfg.shape)
    echo(f"plan: {len(result.files)} file(s) to {cfg.repo_id}" + (f" @ {cfg.revision}" if cfg.revision else ""))
    for f in result.files:
        echo(f"  {f.path:<48} {f.size:>12,} bytes  sha256 {f.sha256}")
    if cfg.dry_run:
        echo("dry run: nothing uploaded")
        return result

    try:
        info = _upload(api, staging, cfg, cfg.message or f"corpusforge: {manifest.counts.records:,} records",
                       token, echo)
    except HfHubHTTPError as e:
        if _status(e) in (401, 403):
            raise _auth_error(cfg.repo_id, _status(e)) from None
        raise HubError(_scrub(str(e).splitlines()[0], token)) from None
    except HubError as e:
        raise HubError(f"{e.message}. Nothing local changed: the corpus {corpus_dir} and the staged upload "
                       f"{staging} are intact", hint=e.hint or "run the same command again to retry") from None
    if cfg.license and manifest.license != cfg.license:  # the card on the Hub says so now: record it
        write_manifest(corpus_dir, manifest.model_copy(update={"license": cfg.license}))
    result.commit_url = getattr(info, "commit_url", None)
    echo(f"pushed: {result.commit_url}")
    return result
