"""A model hub on 127.0.0.1 that speaks the part of the Hugging Face Hub protocol huggingface_hub uses to
install a model, so the real client (pointed here by HF_ENDPOINT) downloads from it:

- GET /api/models/<repo>/revision/<rev>?blobs=true: the commit and every file's size, git blob id and,
  for large (LFS) files, SHA-256, as `HfApi.model_info(..., files_metadata=True)` reads them;
- HEAD and GET /<repo>/resolve/<rev>/<path>: X-Repo-Commit, ETag (for LFS files X-Linked-Etag, the
  SHA-256), Content-Length and Range requests (206 + Content-Range), as `hf_hub_download` needs.

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


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    revisions: set[str] = field(default_factory=lambda: {"main"})

    def lfs(self, path: str) -> bool:
        return path.endswith((".onnx", ".onnx_data")) or ".onnx_data_" in path  # weights, sharded or not


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
        if split.path.startswith("/api/models/"):
            found = self._find(split.path, "/revision/")
            if found and (found[1] in found[0].revisions or found[1] == found[0].commit):
                return self._json(handler, self._info(found[0], split.path), body)
        else:
            found = self._find(split.path, "/resolve/")
            if found and (found[1] in found[0].revisions or found[1] == found[0].commit) and found[2] in found[0].files:
                return self._file(handler, found[0], found[2], body)
        self._json(handler, {"error": "Entry not found"}, body, status=404,
                   headers={"X-Error-Code": "EntryNotFound"})

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

    def _json(self, handler: BaseHTTPRequestHandler, payload: dict, body: bool, status: int = 200,
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
