"""A small Hugging Face Hub-compatible HTTP server for the tests (standard library only).

These machines cannot reach the Hub, and no offline server accepts Hub uploads,
so the tests run the real, unpatched ``huggingface_hub`` and ``datasets``
clients against this one on 127.0.0.1. It serves what they call for a push and
a load: repo info, repo creation, preupload, the LFS batch API and upload PUT
(sha256 checked), the ndjson commit endpoint (atomic, 412 on a stale parent),
revision info, tree listing, paths-info, resolve (with ETag and X-Repo-Commit),
branch creation and validate-yaml. Errors carry the ``X-Error-Code`` header the clients map.

Xet uploads are not spoken: the tests set ``HF_HUB_DISABLE_XET=1``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}


@dataclass
class Entry:
    size: int
    sha256: str      # content hash; also the LFS oid
    git_oid: str     # git blob sha1 of the content (or of the LFS pointer)
    lfs: bool


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)      # branch → commit oid
    commits: dict[str, dict] = field(default_factory=dict)      # oid → {"parent", "files": {path: Entry}, ...}


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class HubState:
    """The server's storage: repos, their commits, and content by sha256."""

    def __init__(self, token: str):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, str | None]] = []   # (method, path, authorization header)
        self.failures: list[dict] = []                        # injected: {"method", "pattern", "status", "times"}

    def fail(self, method: str, pattern: str, status: int = 500, times: int = 1) -> None:
        """Make the next ``times`` requests matching ``method`` and the regex ``pattern`` answer ``status``."""
        self.failures.append({"method": method, "pattern": re.compile(pattern), "status": status, "times": times})

    def files(self, repo: Repo, revision: str) -> tuple[str, dict[str, Entry]] | None:
        oid = repo.branches.get(revision, revision if revision in repo.commits else None)
        if oid is None:
            return None
        return oid, repo.commits[oid]["files"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    def log_message(self, *args) -> None:  # quiet
        pass

    # -- plumbing --------------------------------------------------------------

    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(self, status: int, body: bytes = b"", *, content_type: str = "application/json",
              headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, status: int, message: str, code: str | None = None, head: bool = False) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers=headers, head=head)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.state.token}"

    def _injected_failure(self, method: str) -> bool:
        for f in self.state.failures:
            if f["times"] > 0 and f["method"] == method and f["pattern"].search(self.path):
                f["times"] -= 1
                self._error(f["status"], "injected failure")
                return True
        return False

    def _dispatch(self, method: str) -> None:
        self.state.requests.append((method, self.path, self.headers.get("Authorization")))
        if self._injected_failure(method):
            return
        path = unquote(urlsplit(self.path).path)
        for m, pattern, handler in ROUTES:
            if m == method:
                match = re.fullmatch(pattern, path)
                if match:
                    return handler(self, **match.groupdict())
        self._error(404, f"no route for {method} {path}", head=method == "HEAD")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def _repo(self, kind: str, repo_id: str, *, write: bool = False, head: bool = False) -> Repo | None:
        repo = self.state.repos.get((TYPES.get(kind, kind), repo_id))
        if write and not self._authorized():
            self._error(401, "Invalid credentials in Authorization header", head=head)
            return None
        if repo is None or (repo.private and not self._authorized()):
            self._error(404, f"Repository not found: {repo_id}", "RepoNotFound", head=head)
            return None
        return repo

    def _repo_at(self, kind: str, repo_id: str, revision: str, *, write: bool = False, head: bool = False):
        """(repo, commit oid, files) at ``revision``, or None after answering the error."""
        repo = self._repo(kind, repo_id, write=write, head=head)
        if repo is None:
            return None
        found = self.state.files(repo, revision)
        if found is None:
            self._error(404, f"Revision not found: {revision}", "RevisionNotFound", head=head)
            return None
        return repo, found[0], found[1]

    def _query(self) -> dict:
        return parse_qs(urlsplit(self.path).query)

    # -- endpoints ---------------------------------------------------------------

    def whoami(self):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        self._json(200, {"type": "user", "name": "tester", "orgs": [], "auth": {"type": "access_token"}})

    def create_repo(self):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        payload = json.loads(self._body() or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or 'tester'}/{payload['name']}"
        url = f"{self.server.url}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
        with self.state.lock:
            if (repo_type, repo_id) in self.state.repos:
                # the Hub answers 409 with the repo's url; clients with exist_ok=True read it
                return self._json(409, {"error": "You already created this repo", "url": url},
                                  headers={"X-Error-Message": "You already created this repo"})
            repo = Repo(repo_type, repo_id, bool(payload.get("private")))
            oid = hashlib.sha1(f"init {repo_id} {time.time()}".encode()).hexdigest()
            repo.commits[oid] = {"parent": None, "files": {}, "title": "initial commit", "date": _now()}
            repo.branches["main"] = oid
            self.state.repos[(repo_type, repo_id)] = repo
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def repo_info(self, kind, repo_id, revision="main"):
        at = self._repo_at(kind, repo_id, revision)
        if at is None:
            return
        repo, oid, files = at
        card = {}
        if "README.md" in files:
            text = self.state.blobs[files["README.md"].sha256].decode()
            if text.startswith("---\n"):
                card = yaml.safe_load(text[4:text.index("\n---", 4)]) or {}
        self._json(200, {
            "_id": repo_id, "id": repo_id, "author": repo_id.split("/")[0], "sha": oid, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": card.get("tags", []),
            "cardData": card, "createdAt": _now(), "lastModified": repo.commits[oid]["date"],
            "siblings": [{"rfilename": p} for p in sorted(files)],
        })

    def preupload(self, kind, repo_id, revision):
        at = self._repo_at(kind, repo_id, revision, write=True)
        if at is None:
            return
        repo, oid, files = at
        payload = json.loads(self._body())
        out = []
        for f in payload["files"]:
            binary = b"\0" in base64.b64decode(f["sample"])
            lfs = f["path"].endswith((".parquet", ".arrow", ".bin", ".safetensors")) or binary or f["size"] > 10 << 20
            existing = files.get(f["path"])
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": (existing.sha256 if existing.lfs else existing.git_oid) if existing else None})
        self._json(200, {"files": out, "commitOid": oid})

    def lfs_batch(self, kind, repo_id):
        repo = self._repo(kind or "models", repo_id, write=True)
        if repo is None:
            return
        payload = json.loads(self._body())
        objects = []
        for obj in payload["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.state.blobs:
                item["actions"] = {"upload": {"href": f"{self.server.url}/lfs-upload/{obj['oid']}/{obj['size']}",
                                              "header": {}}}
            objects.append(item)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def lfs_upload(self, oid, size):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid or len(data) != int(size):
            return self._error(400, "uploaded content does not match its sha256 oid or size")
        with self.state.lock:
            self.state.blobs[oid] = data
        self._send(200)

    def commit(self, kind, repo_id, revision):
        repo = self._repo(kind, repo_id, write=True)
        if repo is None:
            return
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        with self.state.lock:  # atomic: everything is checked before anything changes
            if revision not in repo.branches:
                return self._error(404, f"Revision not found: {revision}", "RevisionNotFound")
            head = repo.branches[revision]
            if header.get("parentCommit") and header["parentCommit"] != head:
                return self._error(412, f"A commit has happened since. Please refresh and try again. ({head})")
            files = dict(repo.commits[head]["files"])
            new_blobs = {}
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    sha = hashlib.sha256(data).hexdigest()
                    new_blobs[sha] = data
                    files[value["path"]] = Entry(len(data), sha, git_blob_oid(data), False)
                elif key == "lfsFile":
                    if value["oid"] not in self.state.blobs:
                        return self._error(422, f"LFS object {value['oid']} was never uploaded")
                    size = len(self.state.blobs[value["oid"]])
                    files[value["path"]] = Entry(size, value["oid"], git_blob_oid(lfs_pointer(value["oid"], size)),
                                                 True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: e for p, e in files.items() if not p.startswith(prefix)}
            oid = hashlib.sha1(json.dumps([head, sorted((p, e.sha256) for p, e in files.items()),
                                           header.get("summary"), time.time()]).encode()).hexdigest()
            self.state.blobs.update(new_blobs)
            repo.commits[oid] = {"parent": head, "files": files, "title": header.get("summary", ""), "date": _now()}
            repo.branches[revision] = oid
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._json(200, {"commitUrl": f"{self.server.url}/{prefix}{repo_id}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None, "success": True})

    def create_branch(self, kind, repo_id, branch):
        repo = self._repo(kind, repo_id, write=True)
        if repo is None:
            return
        start = json.loads(self._body() or b"{}").get("startingPoint") or "main"
        with self.state.lock:
            if branch in repo.branches:
                return self._error(409, f"Reference already exists: {branch}")
            found = self.state.files(repo, start)
            if found is None:
                return self._error(404, f"Revision not found: {start}", "RevisionNotFound")
            repo.branches[branch] = found[0]
        self._json(200, {})

    def _entries(self, files: dict[str, Entry], prefix: str, recursive: bool) -> list[dict]:
        prefix = prefix.strip("/")
        out, dirs = [], set()
        for path in sorted(files):
            if prefix and not (path == prefix or path.startswith(prefix + "/")):
                continue
            rest = path[len(prefix) + 1:] if prefix else path
            if "/" in rest and not recursive:
                dirs.add((prefix + "/" if prefix else "") + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(len(parts)):
                    dirs.add((prefix + "/" if prefix else "") + "/".join(parts[: i + 1]))
            out.append(self._file_entry(path, files[path]))
        return [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                for d in sorted(dirs)] + out

    @staticmethod
    def _file_entry(path: str, e: Entry) -> dict:
        entry = {"type": "file", "oid": e.git_oid, "size": e.size, "path": path}
        if e.lfs:
            entry["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
        return entry

    def tree(self, kind, repo_id, revision, path=""):
        at = self._repo_at(kind, repo_id, revision)
        if at is None:
            return
        repo, oid, files = at
        recursive = self._query().get("recursive", ["false"])[0].lower() in ("1", "true")
        entries = self._entries(files, path or "", recursive)
        if path and not entries:
            return self._error(404, f"Entry not found: {path}", "EntryNotFound")
        self._json(200, entries)

    def paths_info(self, kind, repo_id, revision):
        at = self._repo_at(kind, repo_id, revision)
        if at is None:
            return
        repo, oid, files = at
        body = self._body()
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        files = files
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._file_entry(p, files[p]))
            elif any(f.startswith(p + "/") for f in files):
                out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0, "path": p})
        self._json(200, out)

    def resolve(self, kind, repo_id, revision, path, head=False):
        at = self._repo_at(kind or "models", repo_id, revision, head=head)
        if at is None:
            return
        repo, oid, files = at
        entry = files.get(path)
        if entry is None:
            return self._error(404, f"Entry not found: {path}", "EntryNotFound", head=head)
        data = self.state.blobs[entry.sha256]
        headers = {"ETag": f'"{entry.sha256 if entry.lfs else entry.git_oid}"', "X-Repo-Commit": oid,
                   "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        rng = self.headers.get("Range")
        if rng and not head:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return self._send(206, data[start:end + 1], content_type="application/octet-stream",
                                  headers=headers)
        self._send(200, data, content_type="application/octet-stream", headers=headers, head=head)

    def resolve_head(self, kind, repo_id, revision, path):
        self.resolve(kind, repo_id, revision, path, head=True)

    def validate_yaml(self):
        payload = json.loads(self._body() or b"{}")
        content = payload.get("content", "")
        if content.startswith("---"):
            try:
                end = content.index("\n---", 3)
                meta = yaml.safe_load(content[3:end])
                if meta is not None and not isinstance(meta, dict):
                    raise ValueError("metadata must be a mapping")
            except Exception as e:  # noqa: BLE001 - any parse problem is a 400 for the client
                return self._error(400, f"Invalid metadata in README.md: {e}")
        self._json(200, {"errors": [], "warnings": []})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


_KIND = r"(?P<kind>datasets|models|spaces)"
_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
_REV = r"(?P<revision>[^/]+)"
ROUTES = [
    ("GET", r"/api/whoami-v2", Handler.whoami),
    ("POST", r"/api/repos/create", Handler.create_repo),
    ("POST", r"/api/validate-yaml", Handler.validate_yaml),
    ("GET", rf"/api/{_KIND}/{_REPO}", Handler.repo_info),
    ("GET", rf"/api/{_KIND}/{_REPO}/revision/{_REV}", Handler.repo_info),
    ("POST", rf"/api/{_KIND}/{_REPO}/preupload/{_REV}", Handler.preupload),
    ("POST", rf"/api/{_KIND}/{_REPO}/commit/{_REV}", Handler.commit),
    ("POST", rf"/api/{_KIND}/{_REPO}/branch/(?P<branch>[^/]+)", Handler.create_branch),
    ("GET", rf"/api/{_KIND}/{_REPO}/tree/{_REV}", Handler.tree),
    ("GET", rf"/api/{_KIND}/{_REPO}/tree/{_REV}/(?P<path>.*)", Handler.tree),
    ("POST", rf"/api/{_KIND}/{_REPO}/paths-info/{_REV}", Handler.paths_info),
    ("POST", rf"/(?:(?P<kind>datasets|spaces)/)?{_REPO}\.git/info/lfs/objects/batch", Handler.lfs_batch),
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})/(?P<size>\d+)", Handler.lfs_upload),
    ("GET", rf"/(?:(?P<kind>datasets|spaces)/)?{_REPO}/resolve/{_REV}/(?P<path>.+)", Handler.resolve),
    ("HEAD", rf"/(?:(?P<kind>datasets|spaces)/)?{_REPO}/resolve/{_REV}/(?P<path>.+)", Handler.resolve_head),
]


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str = "hf_test_token_0123456789"):
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = HubState(token)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
