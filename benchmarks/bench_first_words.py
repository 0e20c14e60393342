"""Describe with the text reader: time to the first spoken piece, against waiting for the whole summary.

    .venv/bin/python benchmarks/bench_first_words.py [runs]

On 1280 x 720 screens (a dialog, a web-like page of text, each captured as a whole screen with no
window title, and the same dialog captured as a window with its title), times `Describer.describe`
from the call until its first piece (what the user hears first) and until the summary; the peer in
the same run, interleaved, is the earlier behaviour: read every line, then say the summary.
Capture and speech are not included (bench_daemon.py times the whole path from the hotkey).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from screens import SENTENCES, busy, dialog

from describe_screen import reader
from describe_screen.capture import Capture
from describe_screen.config import Config
from describe_screen.describer import Describer, Scene


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    config = Config()
    config.describe.engine = "text"
    describer = Describer(config)
    describer.warm_up()
    box = dialog("Save changes", SENTENCES[:3], ["Save", "Don't Save", "Cancel"])
    screens = {
        "dialog, screen": (box.image, "screen", ""),
        "dialog, window": (box.image, "window", "Text Editor"),
        "page of text": (busy((1280, 720)).image, "screen", ""),
    }
    print(f"median of {runs} runs, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| screen | first piece s | summary s | before: summary after all lines s | first piece said |")
    print("|---|---|---|---|---|")
    for name, (image, target, title) in screens.items():
        firsts, summaries, befores, first_text = [], [], [], ""
        for _ in range(runs):
            start = time.perf_counter()
            pieces = describer.describe(Scene(Capture(image, target, title)), "brief", lambda: False)
            first_text = next(pieces)
            firsts.append(time.perf_counter() - start)
            list(pieces)
            summaries.append(time.perf_counter() - start)
            start = time.perf_counter()  # the peer: every line, then one summary
            reader.brief(describer.ocr.read(image), title, image.size)
            befores.append(time.perf_counter() - start)
        print(f"| {name} | {statistics.median(firsts):.3f} | {statistics.median(summaries):.3f} | "
              f"{statistics.median(befores):.3f} | {first_text.strip()} |")


if __name__ == "__main__":
    main()
