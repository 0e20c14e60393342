"""A model hub on 127.0.0.1 that speaks the part of the Hugging Face Hub protocol huggingface_hub uses to
install a model, so the real client (pointed here by HF_ENDPOINT) downloads from it:

- GET /api/models/<repo>/revision/<rev>?blobs=true: the commit and every file's size, git blob id and,
  for large (LFS) files, SHA-256, as `HfApi.model_info(..., files_metadata=True)` reads them;
- GET /api/models/<repo>/tree/<rev>?recursive=true: every file's path, size, git blob id and LFS SHA-256,
  as `HfApi.list_repo_tree` (and so `snapshot_download`) reads them;
- HEAD and GET /<repo>/resolve/<rev>/<path>: X-Repo-Commit, ETag (for LFS files X-Linked-Etag, the
  SHA-256), Content-Length and Range requests (206 + Content-Range), as `hf_hub_download` needs.

Like the real hub, it refuses what it does not hold: an unknown repo with a 404 `RepoNotFound`, an unknown
revision (neither a branch nor the repo's commit) with a 404 `RevisionNotFound` ("Invalid rev id"), which
huggingface_hub raises as RevisionNotFoundError, and an unknown file with a 404 `EntryNotFound`. A repo's
commit defaults to the one the real hub holds for that repo (PUBLISHED_COMMITS), so a manifest pinned to
any other revision fails to install here as it would there.

Faults a test can ask for: cut the connection halfway through a file's first GET, stall halfway until
released, serve other bytes than the listed ones (a checksum mismatch), or list a file as smaller than it
is (so a disk fills up).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# Commits of the repos our manifests name, as public files that pin them record them (see the comment in
# each models/*.toml). Written down here, apart from the manifests, so that a wrong pin fails a test.
PUBLISHED_COMMITS = {
    "HuggingFaceTB/SmolVLM-256M-Instruct": "7e3e67edbbed1bf9888184d9df282b700a323964",
    "HuggingFaceTB/SmolVLM-500M-Instruct": "a7da5b986cb59b408707209984f360a5f4ad7e47",
    "onnx-community/Florence-2-base": "d59e079711c57174f29265539fb4cc9f0f335916",
    "florence-community/Florence-2-base": "00921df66db728a9ceb750f5eca43e5c203a2051",
    "florence-community/Florence-2-large": "4271c66b88cdbc05735372ec13b2360108de5317",
    "Systran/faster-whisper-base.en": "3d3d5dee26484f91867d81cb899cfcf72b96be6c",
    "Systran/faster-whisper-base": "ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66",
    "onnx-community/Qwen3.5-0.8B-ONNX-OPT": "fafab72d87a9e6be3925b38caf48286d2838f2d0",
    "onnx-community/Qwen3.5-2B-ONNX-OPT": "2ea7886f48b926aca97de8b0e041ffca7e3ebaa9",
}
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = ""  # "" = the repo's real commit (PUBLISHED_COMMITS), set when the hub is made
    revisions: set[str] = field(default_factory=lambda: {"main"})  # branch names that resolve to `commit`

    def holds(self, revision: str) -> bool:
        return revision == self.commit or revision in self.revisions

    def lfs(self, path: str) -> bool:
        # weights, sharded or not; .bin as the hub's default .gitattributes has it (CTranslate2's model.bin)
        return path.endswith((".onnx", ".onnx_data", ".bin")) or ".onnx_data_" in path


@dataclass
class Faults:
    cut_once: set[str] = field(default_factory=set)  # paths whose first GET stops halfway
    tampered: set[str] = field(default_factory=set)  # paths served with one byte changed
    listed_smaller: dict[str, int] = field(default_factory=dict)  # path -> size the listing claims
    stalled: set[str] = field(default_factory=set)  # paths whose GETs send half, then wait for `release`
    release: threading.Event = field(default_factory=threading.Event)


class FakeHub:
    """`with FakeHub({"org/name": Repo(...)}) as hub:` serves until the block ends; `hub.url` is the
    endpoint, `hub.log` the (method, path, Range header) of every request."""

    def __init__(self, repos: dict[str, Repo], faults: Faults | None = None) -> None:
        for repo_id, repo in repos.items():
            repo.commit = repo.commit or PUBLISHED_COMMITS.get(repo_id, OTHER_COMMIT)
        self.repos = repos
        self.faults = faults or Faults()
        self.log: list[tuple[str, str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                hub.serve(self, body=True)

            def do_HEAD(self) -> None:
                hub.serve(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _find(self, path: str, marker: str) -> tuple[Repo, str, str] | None:
        """(repo, revision, rest) for /<prefix><repo><marker><rev>/<rest>."""
        for repo_id, repo in self.repos.items():
            for prefix in ("/api/models/", "/"):
                head = f"{prefix}{repo_id}{marker}"
                if path.startswith(head):
                    revision, _, rest = path[len(head):].partition("/")
                    return repo, unquote(revision), unquote(rest)
        return None

    def serve(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        split = urlsplit(handler.path)
        self.log.append((handler.command, split.path, handler.headers.get("Range", "")))
        api = split.path.startswith("/api/models/")
        tree = api and self._find(split.path, "/tree/") is not None
        found = self._find(split.path, "/tree/" if tree else "/revision/" if api else "/resolve/")
        if found is None:
            return self._refuse(handler, body, "RepoNotFound", "Repository not found")
        repo, revision, rest = found
        if not repo.holds(revision):
            return self._refuse(handler, body, "RevisionNotFound", f"Invalid rev id: {revision}")
        if tree:
            return self._json(handler, self._tree(repo), body)
        if api:
            return self._json(handler, self._info(repo, split.path), body)
        if rest not in repo.files:
            return self._refuse(handler, body, "EntryNotFound", "Entry not found")
        self._file(handler, repo, rest, body)

    def _refuse(self, handler: BaseHTTPRequestHandler, body: bool, code: str, message: str) -> None:
        """The real hub's 404: the error code and message in headers, which huggingface_hub turns into
        RepositoryNotFoundError, RevisionNotFoundError or EntryNotFoundError."""
        self._json(handler, {"error": message}, body, status=404,
                   headers={"X-Error-Code": code, "X-Error-Message": message})

    def _info(self, repo: Repo, path: str) -> dict:
        siblings = []
        for name, data in sorted(repo.files.items()):
            size = self.faults.listed_smaller.get(name, len(data))
            entry = {"rfilename": name, "size": size, "blobId": git_blob_id(data)}
            if repo.lfs(name):
                entry["lfs"] = {"size": size, "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
            siblings.append(entry)
        repo_id = next(r for r, v in self.repos.items() if v is repo)
        return {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False, "siblings": siblings}

    def _tree(self, repo: Repo) -> list[dict]:
        """The recursive tree listing (files only: no test repo has a folder of its own to list)."""
        entries = []
        for entry in self._info(repo, "")["siblings"]:
            item = {"type": "file", "oid": entry["blobId"], "size": entry["size"], "path": entry["rfilename"]}
            if "lfs" in entry:
                item["lfs"] = {"oid": entry["lfs"]["sha256"], "size": entry["size"], "pointerSize": 134}
            entries.append(item)
        return entries

    def _json(self, handler: BaseHTTPRequestHandler, payload: dict | list, body: bool, status: int = 200,
              headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def _file(self, handler: BaseHTTPRequestHandler, repo: Repo, name: str, body: bool) -> None:
        data = repo.files[name]
        etag = hashlib.sha256(data).hexdigest() if repo.lfs(name) else git_blob_id(data)
        if name in self.faults.tampered:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        wanted = handler.headers.get("Range", "")
        if wanted.startswith("bytes="):
            start = int(wanted[len("bytes="):].split("-")[0])
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("X-Repo-Commit", repo.commit)
        handler.send_header("ETag", f'"{etag}"')
        if repo.lfs(name):
            handler.send_header("X-Linked-Etag", f'"{etag}"')
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        if not body:
            return
        if name in self.faults.stalled and not self.faults.release.is_set():
            handler.wfile.write(data[start:][: len(data) // 2])
            handler.wfile.flush()
            self.faults.release.wait(120)
            handler.close_connection = True
            return
        if name in self.faults.cut_once and not start:
            self.faults.cut_once.discard(name)
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)  # the connection drops mid-file, as on a lost network
            return
        handler.wfile.write(data[start:])


def repo_from_bundle(source: Path, bundle: Path, graphs: list[str]) -> dict[str, bytes]:
    """The files of a tiny exported bundle in a published repo's layout: configs and tokenizer at the
    top (from the checkpoint folder), graphs under onnx/ with onnx-community's precision suffixes."""
    files = {p.name: p.read_bytes() for p in source.iterdir() if p.suffix in (".json", ".jinja")}
    for path in bundle.glob("*.onnx"):
        if any(path.name.startswith(graph) for graph in graphs):
            files[f"onnx/{path.name}"] = path.read_bytes()
    for graph in graphs:  # our exporter has no fp16 embed_tokens; the hub has every precision of it
        for suffix in ("_int8", "_fp16"):
            files.setdefault(f"onnx/{graph}{suffix}.onnx", files[f"onnx/{graph}.onnx"])
    return files
