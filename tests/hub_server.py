"""A small Hub-compatible HTTP server for offline publishing tests (stdlib only, plus PyYAML).

It speaks the subset of the Hugging Face Hub API that huggingface_hub 2.x, datasets 5, timm 1.0 and
evaluate 0.4 call when they create repos, upload and download files:

- ``GET  /api/whoami-v2``, ``GET /api/agent-harnesses`` (empty), ``POST /api/validate-yaml``,
  ``POST /api/repos/create``
- ``GET  /api/{type}s/{ns}/{name}[/revision/{rev}]``: repo info (sha, siblings, cardData)
- ``GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]``, ``POST .../paths-info/{rev}``, ``GET .../refs``,
  ``GET .../commits/{rev}``
- ``POST .../preupload/{rev}`` (regular or LFS upload mode, remote oid for no-op detection),
  ``POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch`` (git-LFS "basic" transfer), ``PUT /_lfs/{oid}``,
  ``POST /_lfs/{oid}/verify``, ``POST .../commit/{rev}`` (ndjson: file, lfsFile, deletedFile, deletedFolder)
- ``HEAD``/``GET /{prefix}{ns}/{name}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` and ``Range``.

One branch (``main``), every commit kept as a snapshot (so a commit sha is a valid revision), no Xet,
no pull requests. Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound) exactly
as huggingface_hub expects. Writes need an ``Authorization: Bearer ...`` header (any token). It binds
the loopback interface only. Routes it does not know answer 404 and are recorded in ``unhandled``.

Run standalone: ``python tests/hub_server.py`` prints the endpoint and serves until interrupted. For
pytest: the session fixture ``hub_server`` and ``run_client`` (a client script in a fresh interpreter
whose environment points huggingface_hub, datasets, timm and evaluate at the server).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_SUFFIXES = (
    ".parquet",
    ".arrow",
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".png",
    ".jpg",
    ".jpeg",
    ".npz",
    ".npy",
    ".zip",
    ".gz",
    ".tar",
    ".onnx",
    ".h5",
    ".msgpack",
)
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @cached_property
    def git_oid(self) -> str:
        """git blob sha1 of the stored object (the LFS pointer for LFS files, as git stores it)."""
        body = self.pointer if self.lfs else self.data
        return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n"
        ).encode()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    oid: str
    title: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    sdk: str | None
    created: str
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def snapshot(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.head
        return next(
            (
                c
                for c in self.commits
                if c.oid == revision or (len(revision) >= 7 and c.oid.startswith(revision))
            ),
            None,
        )


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _card_data(files: dict[str, Blob]) -> dict | None:
    readme = files.get("README.md")
    if readme is None:
        return None
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", readme.data.decode("utf-8", "replace"), re.S)
    return (yaml.safe_load(match.group(1)) or {}) if match else None


class HubState:
    """All repos and uploaded LFS objects, in memory, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def create(self, repo_type: str, repo_id: str, sdk: str | None, url: str) -> Repo:
        if (repo_type, repo_id) in self.repos:
            raise HubError(409, "You already created this repo", extra={"url": url})
        repo = Repo(repo_type, repo_id, sdk, _now())
        self.repos[(repo_type, repo_id)] = repo
        self.commit(repo, "initial commit", {".gitattributes": Blob(GITATTRIBUTES, False)}, [], [])
        return repo

    def commit(
        self,
        repo: Repo,
        title: str,
        added: dict[str, Blob],
        deleted_files: list[str],
        deleted_folders: list[str],
    ) -> Commit:
        files = dict(repo.head.files) if repo.commits else {}
        for path in deleted_files:
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        for folder in deleted_folders:
            prefix = folder.rstrip("/") + "/"
            for path in [p for p in files if p.startswith(prefix)]:
                del files[path]
        files.update(added)
        parent = repo.head.oid if repo.commits else ""
        digest = json.dumps([parent, title, sorted((p, b.git_oid) for p, b in files.items())]).encode()
        commit = Commit(hashlib.sha1(digest).hexdigest(), title, _now(), files)
        repo.commits.append(commit)
        return commit


def _entries(files: dict[str, Blob], base: str, recursive: bool) -> list[dict]:
    """Tree entries under folder `base` ("" = root): files and (implicit) folders, sorted by path."""
    prefix = base.rstrip("/") + "/" if base else ""
    out: dict[str, dict] = {}
    for path, blob in files.items():
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        depth = len(parts) if recursive else 1
        for i in range(1, min(depth, len(parts) - 1) + 1):
            folder = prefix + "/".join(parts[:i])
            out.setdefault(folder, _folder_entry(folder))
        if recursive or len(parts) == 1:
            out[path] = _file_entry(path, blob)
    return [out[k] for k in sorted(out)]


def _file_entry(path: str, blob: Blob) -> dict:
    entry = {"type": "file", "oid": blob.git_oid, "size": len(blob.data), "path": path}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
    return entry


def _folder_entry(path: str) -> dict:
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass

    # --- plumbing -------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode())

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.server.requests.append((self.command, url.path))
        try:
            body = self._body() if self.command in ("POST", "PUT") else b""
            with self.server.state.lock:
                handled = self._route(parts, query, body)
            if not handled:
                self.server.unhandled.append(f"{self.command} {url.path}")
                raise HubError(404, f"no route for {self.command} {url.path}")
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, json.dumps({"error": err.message, **err.extra}).encode(), headers)

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch

    def _authorized(self) -> None:
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")

    # --- routing --------------------------------------------------------------------------------
    def _route(self, parts: list[str], query: dict, body: bytes) -> bool:
        method = self.command
        if parts[:1] == ["api"]:
            return self._route_api(method, parts[1:], query, body)
        if parts[:1] == ["_lfs"] and len(parts) >= 2:
            return self._route_lfs(method, parts[1:], body)
        repo_type = "model"
        if parts[:1] in (["datasets"], ["spaces"]):
            repo_type, parts = REPO_TYPES[parts[0]], parts[1:]
        if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return method == "POST" and self._lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}", body)
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            self._resolve(repo_type, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
            return True
        return False

    def _route_api(self, method: str, parts: list[str], query: dict, body: bytes) -> bool:
        state = self.server.state
        if parts == ["whoami-v2"] and method == "GET":
            self._authorized()
            token = {"displayName": "fake", "role": "write"}
            self._json(
                {
                    "type": "user",
                    "name": self.server.user,
                    "fullname": self.server.user,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": token},
                }
            )
            return True
        if parts == ["agent-harnesses"] and method == "GET":  # huggingface_hub's user-agent registry
            self._json({"standardEnvVars": [], "harnesses": {}})
            return True
        if parts == ["validate-yaml"] and method == "POST":
            content = json.loads(body)["content"]
            match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.S)
            try:
                if match:
                    yaml.safe_load(match.group(1))
            except yaml.YAMLError as exc:
                self._json({"errors": [{"message": str(exc)}], "warnings": []}, 400)
                return True
            self._json({"errors": [], "warnings": []})
            return True
        if parts == ["repos", "create"] and method == "POST":
            self._authorized()
            payload = json.loads(body)
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload.get('organization') or self.server.user}/{payload['name']}"
            if repo_type == "space" and not payload.get("sdk"):
                raise HubError(400, "a Space needs an sdk")
            url = f"{self.server.url}/{URL_PREFIX[repo_type]}{repo_id}"
            state.create(repo_type, repo_id, payload.get("sdk"), url)
            self._json({"url": url, "name": repo_id})
            return True
        if len(parts) < 3 or parts[0] not in REPO_TYPES:
            return False
        repo = state.repo(REPO_TYPES[parts[0]], f"{parts[1]}/{parts[2]}")
        rest = parts[3:]
        if method == "GET" and (rest == [] or rest[:1] == ["revision"]):
            self._repo_info(repo, "/".join(rest[1:]) if rest else "main")
        elif method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
            commit = self._snapshot(repo, rest[1])
            base = "/".join(rest[2:])
            if base and not any(p.startswith(base + "/") for p in commit.files):
                raise HubError(404, f"{base} does not exist", "EntryNotFound")
            self._json(_entries(commit.files, base, query.get("recursive", "false").lower() == "true"))
        elif method == "POST" and rest[:1] == ["paths-info"] and len(rest) == 2:
            self._paths_info(repo, rest[1], body)
        elif method == "GET" and rest == ["refs"]:
            main = {"name": "main", "ref": "refs/heads/main", "targetCommit": repo.head.oid}
            self._json({"branches": [main], "converts": [], "tags": [], "pullRequests": []})
        elif method == "GET" and rest[:1] == ["commits"] and len(rest) == 2:
            head = self._snapshot(repo, rest[1])
            history = repo.commits[: repo.commits.index(head) + 1][::-1]
            self._json(
                [
                    {
                        "id": c.oid,
                        "title": c.title,
                        "message": "",
                        "date": c.date,
                        "authors": [{"user": self.server.user}],
                    }
                    for c in history
                ]
            )
        elif method == "POST" and rest[:1] == ["preupload"] and len(rest) == 2:
            self._authorized()
            self._preupload(repo, rest[1], json.loads(body))
        elif method == "POST" and rest[:1] == ["commit"] and len(rest) == 2:
            self._authorized()
            self._commit(repo, rest[1], query, body)
        else:
            return False
        return True

    def _route_lfs(self, method: str, parts: list[str], body: bytes) -> bool:
        oid = parts[0]
        if method == "PUT" and len(parts) == 1:
            if hashlib.sha256(body).hexdigest() != oid:
                raise HubError(400, f"uploaded content does not match oid {oid}")
            self.server.state.lfs_objects[oid] = body
            self._send(200)
            return True
        if method == "POST" and parts[1:] == ["verify"]:
            if oid not in self.server.state.lfs_objects:
                raise HubError(404, f"LFS object {oid} was not uploaded")
            self._json({"success": True})
            return True
        return False

    # --- endpoints ------------------------------------------------------------------------------
    def _snapshot(self, repo: Repo, revision: str) -> Commit:
        commit = repo.snapshot(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _repo_info(self, repo: Repo, revision: str) -> None:
        commit = self._snapshot(repo, revision)
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling = {"rfilename": path, "size": len(blob.data), "blobId": blob.git_oid}
            if blob.lfs:
                sibling["lfs"] = {
                    "sha256": blob.sha256,
                    "size": len(blob.data),
                    "pointerSize": len(blob.pointer),
                }
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "cardData": _card_data(commit.files),
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        if repo.repo_type == "space":
            info["sdk"] = repo.sdk
        self._json(info)

    def _paths_info(self, repo: Repo, revision: str, body: bytes) -> None:
        commit = self._snapshot(repo, revision)
        form = parse_qs(body.decode(), keep_blank_values=True)
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                out.append(_file_entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(_folder_entry(path))
        self._json(out)

    def _preupload(self, repo: Repo, revision: str, payload: dict) -> None:
        commit = self._snapshot(repo, revision)
        files = []
        for item in payload["files"]:
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item["sample"])
            lfs = path.lower().endswith(LFS_SUFFIXES) or b"\0" in sample or size > LFS_SIZE_THRESHOLD
            remote = commit.files.get(path)
            oid = None
            if remote is not None and remote.lfs == lfs:
                oid = remote.sha256 if lfs else remote.git_oid
            files.append(
                {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._json({"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str, body: bytes) -> bool:
        self._authorized()
        self.server.state.repo(repo_type, repo_id)
        payload = json.loads(body)
        if "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "only the basic LFS transfer is supported")
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.server.state.lfs_objects:
                href = f"{self.server.url}/_lfs/{obj['oid']}"
                entry["actions"] = {"upload": {"href": href}, "verify": {"href": f"{href}/verify"}}
            objects.append(entry)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
            content_type="application/vnd.git-lfs+json",
        )
        return True

    def _commit(self, repo: Repo, revision: str, query: dict, body: bytes) -> None:
        if revision != "main":
            raise HubError(404, f"only the main branch exists, not {revision}", "RevisionNotFound")
        if query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by this test server")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), None)
        if header is None:
            raise HubError(400, "commit without a header line")
        parent = header.get("parentCommit")
        if parent and parent != repo.head.oid:
            raise HubError(412, f"parent commit {parent} is not the head of main")
        added: dict[str, Blob] = {}
        deleted_files, deleted_folders = [], []
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                added[value["path"]] = Blob(base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                data = self.server.state.lfs_objects.get(value["oid"])
                if data is None:
                    raise HubError(400, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                added[value["path"]] = Blob(data, True)
            elif key == "deletedFile":
                deleted_files.append(value["path"])
            elif key == "deletedFolder":
                deleted_folders.append(value["path"])
            elif key != "header":
                raise HubError(400, f"unsupported commit operation {key}")
        commit = self.server.state.commit(repo, header["summary"], added, deleted_files, deleted_folders)
        url = f"{self.server.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.oid}"
        self._json({"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.server.state.repo(repo_type, repo_id)
        commit = self._snapshot(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"{path} does not exist in {repo_id}", "EntryNotFound")
        data, status = blob.data, 200
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.etag}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(len(blob.data))
        byte_range = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if byte_range and self.command == "GET":
            start_s, end_s = byte_range.groups()
            size = len(blob.data)
            start = int(start_s) if start_s else max(size - int(end_s), 0)
            end = min(int(end_s), size - 1) if (end_s and start_s) else size - 1
            data, status = blob.data[start : end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(status, data, headers, content_type="application/octet-stream")


class HubServer(ThreadingHTTPServer):
    """The server; ``start()`` serves in a daemon thread on 127.0.0.1 and a free port, ``stop()`` ends it."""

    daemon_threads = True

    def __init__(self, user: str = "alice", port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.user = user
        self.state = HubState()
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[str] = []
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


# --- pytest helpers -----------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", name="hub_server")
def hub_server_fixture():
    """A running server (user "alice") for the test session; stopped at teardown."""
    server = HubServer(user="alice").start()
    yield server
    server.stop()


def run_client(server: HubServer, tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh python with HF_ENDPOINT etc. pointing at `server`; fail with its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=server.url,
        HF_TOKEN="hf_fake",
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"client failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert not server.unhandled, f"the client called routes the test server does not know: {server.unhandled}"
    return proc


if __name__ == "__main__":
    server = HubServer()
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()
