"""Stop and newest-wins on a 4K screen, through the real daemon on a 3840x2160 virtual display.

    .venv/bin/python benchmarks/bench_stop.py [--runs 5]

  - stop to silence: the daemon reads the 4K screen aloud; once it speaks, `stop` is sent, and the
    time from sending it until the speech file last grew is measured (the file is written in 20 ms
    steps at playing pace, so it is what a listener hears).
  - new request to first words: while the daemon works on describing the 4K screen (0.3 s after it
    was asked), a read of a small picture is sent; measured until the daemon starts saying its first
    sentence. Interleaved with the same read sent to an idle daemon, the floor it is compared with.
Prints a Markdown table (medians, ranges) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
import wave
from pathlib import Path

from bench_daemon import LINES, running_daemon
from PIL import Image, ImageDraw, ImageFont

from describe_screen import ipc


def frames(path: Path) -> int:
    with wave.open(str(path)) as w:
        return w.getnframes()


def spoken(client: ipc.Client) -> list[str]:
    return client.request({"cmd": "status"})["result"]["spoken"]


def wait_idle(client: ipc.Client) -> None:
    while (status := client.request({"cmd": "status"})["result"])["busy"] or status["speaking"]:
        time.sleep(0.05)


def stop_to_silence(client: ipc.Client, speech: Path) -> float:
    before = len(spoken(client))
    threading.Thread(target=ipc.Client(client.path, timeout=300).request, args=({"cmd": "read"},),
                     daemon=True).start()
    while len(spoken(client)) <= before:
        time.sleep(0.01)
    playing = frames(speech)
    time.sleep(0.3)  # well into a sentence
    if frames(speech) == playing:
        raise RuntimeError("the daemon was not speaking when stop was sent: nothing to measure")
    start = time.perf_counter()
    client.request({"cmd": "stop"})
    last, last_change = frames(speech), start
    while time.perf_counter() - start < 2.0:
        if (now := frames(speech)) != last:
            last, last_change = now, time.perf_counter()
        time.sleep(0.002)
    wait_idle(client)
    return last_change - start


def first_words(client: ipc.Client, picture: Path, over_4k: bool) -> float:
    before = len(spoken(client))
    if over_4k:
        threading.Thread(target=ipc.Client(client.path, timeout=300).request, args=({"cmd": "describe"},),
                         daemon=True).start()
        time.sleep(0.3)
    start = time.perf_counter()
    threading.Thread(target=client.request, args=({"cmd": "read", "image": str(picture)},), daemon=True).start()
    while not any("Pelican" in said for said in spoken(client)[before:]):
        time.sleep(0.005)
    took = time.perf_counter() - start
    wait_idle(client)
    return took


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"date {time.strftime('%Y-%m-%d %H:%M')}; runs {args.runs}; load {os.getloadavg()[0]:.1f}\n")
    picture = Path(tempfile.mkdtemp()) / "small.png"
    image = Image.new("RGB", (700, 160), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
    ImageDraw.Draw(image).text((30, 50), "Pelican marmalade", fill="black", font=font)
    image.save(picture)
    stops, over, idle = [], [], []
    text = "\n".join([LINES] * 3)
    with running_daemon("3840x2160", "Report", text, ("OK", "Cancel"), "[speech]\ncues = false\n") as (
            client, _, tmp, _):
        for _ in range(args.runs):
            stops.append(stop_to_silence(client, tmp / "s.wav"))
            over.append(first_words(client, picture, over_4k=True))
            idle.append(first_words(client, picture, over_4k=False))
    ratios = [a / b for a, b in zip(over, idle, strict=True)]
    print("| measure (3840x2160 screen) | median s | min s | max s |")
    print("|---|---|---|---|")
    print(f"| stop to silence (reading aloud; 0.02 s is one written step) | {summary(stops)} |")
    print(f"| new request over a 4K describe: first words | {summary(over)} |")
    print(f"| the same request to an idle daemon: first words | {summary(idle)} |")
    print(f"\nover-4K / idle: median {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
