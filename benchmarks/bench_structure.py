"""The whole text reader (recognition, shape evidence, layout, brief and full reading) on the corpus
screens, this tree against an earlier commit's, interleaved: what a structure change costs (issue 20:
no worse than 1.1x per screen).

The screens of tests/test_heldout.py and tests/test_corpus.py are rendered once on a virtual display and
saved; each side reads them in its own worker process (bench_server.Worker), the earlier commit's
package exported with `git archive` so it imports nothing of today's. The two sides take turns screen
by screen, the one that goes first alternating, so a load that rises or falls on the shared machine
touches both alike. Printed: each round's ratio of the total time (ours / before), their median and
range, and seconds per screen.

    .venv/bin/python benchmarks/bench_structure.py [rounds] [--before REV]   (default: 5 rounds, main)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def render(folder: Path) -> list[Path]:
    """Every held-out and present-corpus screen, saved as PNG in `folder` (a virtual display while it runs)."""
    import corpus
    import heldout

    from describe_screen.virtual_display import start_xvfb

    folder.mkdir()
    proc, display = start_xvfb()
    os.environ["DISPLAY"] = display
    try:
        images = [(case.name, case.image) for case in heldout.build(folder, display)]
        images += [(case.name, case.image) for case in corpus.build(display, folder)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    paths = []
    for name, image in images:
        paths.append(folder / f"screen-{name}.png")
        image.save(paths[-1])
    return paths


def export(rev: str, folder: Path) -> Path:
    """The describe_screen package as it was at `rev`, unpacked under `folder`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "describe_screen"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def worker(tree: str, screens: list[str]) -> None:
    """Load the reader from `tree`, then read the next screen (in turn, round and round) per "go" line:
    one JSON line with its seconds."""
    sys.path.insert(0, tree)
    from PIL import Image

    from describe_screen import reader
    from describe_screen.ocr import TextRecognizer

    ocr = TextRecognizer(provider="cpu")
    ocr.warm_up()
    images = [Image.open(path).convert("RGB") for path in screens]
    print(json.dumps({"tree": reader.__file__}), flush=True)
    for n, _ in enumerate(sys.stdin):
        image = images[n % len(images)]
        start = time.perf_counter()
        lines = ocr.read(image)
        reader.brief(lines, "", image.size)
        list(reader.full(lines))
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def main() -> None:
    from bench_server import Worker

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = int(args[0]) if args and args[0].isdigit() else 5
    rev = sys.argv[sys.argv.index("--before") + 1] if "--before" in sys.argv else "main"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        screens = [str(p) for p in render(folder / "screens")]
        before_tree = export(rev, folder / "before")
        sides = {name: Worker([__file__, "--worker", str(tree), *screens])
                 for name, tree in (("before", before_tree), ("ours", ROOT))}
        for name, side in sides.items():
            print(f"{name}: {side.info['tree']}")
        load = os.getloadavg()
        print(f"{len(screens)} screens, {rounds} rounds, before = {rev}, load average "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
        ratios, per_screen = [], {"before": [], "ours": []}
        for n in range(rounds):
            total = {"before": 0.0, "ours": 0.0}
            for i in range(len(screens)):  # screen by screen, the side that goes first alternating
                for name in ["before", "ours"] if (n + i) % 2 == 0 else ["ours", "before"]:
                    total[name] += sides[name].run()["seconds"]
            for name, seconds in total.items():
                per_screen[name].append(seconds / len(screens))
            ratios.append(total["ours"] / total["before"])
            print(f"round {n + 1}: before {per_screen['before'][-1]:.3f} s/screen, ours "
                  f"{per_screen['ours'][-1]:.3f} s/screen, ratio {ratios[-1]:.3f}", flush=True)
        for side in sides.values():
            side.close()
        load = os.getloadavg()
        print(f"ours / before: median {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); "
              f"s/screen median before {statistics.median(per_screen['before']):.3f}, ours "
              f"{statistics.median(per_screen['ours']):.3f}; load average at the end {load[0]:.1f}")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker(sys.argv[2], sys.argv[3:])
    else:
        main()
