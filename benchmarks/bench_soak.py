"""Soak: 1,000 requests through one real daemon; memory per 100 requests, errors, lost sentences.

    .venv/bin/python benchmarks/bench_soak.py [--requests 1000]

The daemon runs on Xvfb with a text window and writes its speech to a WAV. Requests cycle through
describe (screen and a picture file), read, a typed question and repeat. Each request is sent as soon
as the previous one is done, so it usually cuts the previous speech short (newest wins); after every
`--check-every`-th request the script instead waits until the speech has been played and checks that
every sentence of the answer was spoken (the daemon's list of utterances it actually started).
Prints the daemon's resident memory after every 100 requests, and the totals, for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from bench_daemon import running_daemon
from PIL import Image, ImageDraw, ImageFont

from describe_screen.speech import split_sentences

TEXT = "Invoice 42 is paid\nShipping is free"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def picture(folder: Path) -> Path:
    image = Image.new("RGB", (640, 200), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 30)
    ImageDraw.Draw(image).text((30, 60), "Parcel arrives on Monday", fill="black", font=font)
    image.save(folder / "parcel.png")
    return folder / "parcel.png"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--check-every", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"date {time.strftime('%Y-%m-%d %H:%M')}; requests {args.requests}\n")
    image = picture(Path(tempfile.mkdtemp()))
    requests = [{"cmd": "describe"}, {"cmd": "read"}, {"cmd": "describe", "image": str(image)},
                {"cmd": "ask", "question": "what is free?"}, {"cmd": "repeat"}]
    errors, lost, checked, start = [], [], 0, time.perf_counter()
    config = "[speech]\ncues = false\nrate = 450\n"
    with running_daemon("1280x720", "Invoice", TEXT, ("OK",), config) as (client, _, _, pid):
        print("| requests | daemon RSS MB | errors | lost sentences | seconds |")
        print("|---|---|---|---|---|")
        print(f"| 0 | {rss_mb(pid):.0f} | 0 | 0 | 0 |", flush=True)
        for n in range(1, args.requests + 1):
            request = requests[n % len(requests)]
            final = client.request(request)
            if final["event"] != "done":
                errors.append((n, final))
            elif n % args.check_every == 0:
                deadline = time.monotonic() + 60
                while (status := client.request({"cmd": "status"})["result"])["speaking"] or status["busy"]:
                    if time.monotonic() > deadline:
                        errors.append((n, "still speaking after 60 s"))
                        break
                    time.sleep(0.02)
                checked += 1
                sentences, rest = split_sentences(final["result"]["text"])
                expected = [*sentences, rest.strip()] if rest.strip() else sentences
                if status["spoken"][-len(expected):] != expected:
                    lost.append((n, expected, status["spoken"][-len(expected):]))
            if n % 100 == 0 or n == args.requests:
                print(f"| {n} | {rss_mb(pid):.0f} | {len(errors)} | {len(lost)} | "
                      f"{time.perf_counter() - start:.0f} |", flush=True)
    print(f"\nsentences checked after {checked} requests")
    for item in (errors + lost)[:10]:
        print("problem:", item)


if __name__ == "__main__":
    main()
