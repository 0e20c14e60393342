"""Text reader timing: time to the first spoken line and to the whole screen, against rapidocr's own call.

Prints a table; the peer is rapidocr's one-shot `RapidOCR()(image)` with default settings, run in the
same process on the same screens, so the ratio holds on any machine. Target: first words <= 1.0 s.
With `--before FILE`, an earlier ocr.py (e.g. `git show REV:describe_screen/ocr.py > /tmp/ocr_before.py`)
is timed too, interleaved with today's, to show what a change costs (target: the full read no more
than 20 % slower).

    .venv/bin/python benchmarks/bench_reader.py [runs] [--before FILE]
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from screens import busy

from describe_screen.ocr import TextRecognizer


def timed_stream(recognizer: TextRecognizer, image) -> tuple[float, float, float, int]:  # type: ignore[no-untyped-def]
    """(seconds to the first line, CPU seconds to it, seconds to the last, line count) for one read.

    CPU seconds (all threads) do not grow when other programs load the machine, wall seconds do.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    first, first_cpu, count = None, 0.0, 0
    for _ in recognizer.iter_lines(image):
        count += 1
        if first is None:
            first, first_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return first or 0.0, first_cpu, time.perf_counter() - start, count


def recognizer_from(path: Path) -> TextRecognizer:
    """The TextRecognizer of an earlier copy of describe_screen/ocr.py."""
    spec = importlib.util.spec_from_file_location("ocr_before", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["ocr_before"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module.TextRecognizer()


def main() -> None:
    import numpy as np
    from rapidocr import RapidOCR

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args and args[0].isdigit() else 5
    before = recognizer_from(Path(sys.argv[sys.argv.index("--before") + 1])) if "--before" in sys.argv else None
    if before:
        before.warm_up()
    ours = TextRecognizer()
    ours.warm_up()
    peer = RapidOCR(params={"Global.log_level": "critical"})
    print(f"provider {ours.provider()}, median of {runs} runs, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'screen':>10} {'lines':>6} {'first words s':>14} {'(cpu s)':>8} {'full read s':>12} "
          f"{'rapidocr s':>11} {'ratio':>6}")
    for size in ((1280, 720), (1920, 1080)):
        screen = busy(size)
        bgr = np.ascontiguousarray(np.asarray(screen.image)[:, :, ::-1])
        peer(bgr)  # warm the peer's sessions too
        firsts, cpus, fulls, peers, count, ratios = [], [], [], [], 0, []
        for _ in range(runs):
            first, cpu, full, count = timed_stream(ours, screen.image)
            firsts.append(first)
            cpus.append(cpu)
            fulls.append(full)
            if before:
                ratios.append(full / timed_stream(before, screen.image)[2])
            start = time.perf_counter()
            peer(bgr)
            peers.append(time.perf_counter() - start)
        full_s, peer_s = statistics.median(fulls), statistics.median(peers)
        print(f"{size[0]}x{size[1]:<5} {count:>6} {statistics.median(firsts):>14.3f} "
              f"{statistics.median(cpus):>8.3f} {full_s:>12.3f} "
              f"{peer_s:>11.3f} {full_s / peer_s:>6.2f}")
        if ratios:
            print(f"{'':>10} full read / before: median {statistics.median(ratios):.2f} "
                  f"(range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
