"""Hotkey to first words, and full read time, through the real daemon on a virtual display.

    .venv/bin/python benchmarks/bench_daemon.py [--runs 5]

For each screen size it starts Xvfb with a text-filled window, runs `describe-screen daemon
--speech-file`, presses the read and describe hotkeys with xdotool, and times:
  - hotkey -> first words: from the key press until the daemon starts saying its first sentence;
  - full read: from the key press until all the text was recognised (speech may still be playing);
  - ask by voice: hold the ask key 3 s (a recorded question stands in for the microphone), then from
    the release until the first words of the answer.
Prints a Markdown table (medians) to paste into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from describe_screen import ipc
from describe_screen.virtual_display import start_xvfb

LINES = "\n".join(f"Quarterly report section {n}: revenue grew in the northern region by {n} percent"
                  for n in range(1, 13))


@contextlib.contextmanager
def running_daemon(size: str, title: str, text: str, buttons: tuple[str, ...],
                   config: str = "") -> Iterator[tuple[ipc.Client, dict, Path, int]]:
    """Xvfb of `size` with one sample window, and the daemon on it; yields (client, env, tmp folder,
    the daemon's process id)."""
    xvfb, display = start_xvfb(size + "x24")
    tmp = Path(tempfile.mkdtemp())
    (tmp / "config.toml").write_text(config)
    env = dict(os.environ, DISPLAY=display, DESCRIBE_SCREEN_SOCKET=str(tmp / "d.sock"),
               DESCRIBE_SCREEN_CONFIG=str(tmp / "config.toml"), DESCRIBE_SCREEN_DATA=str(tmp / "data"))
    window = subprocess.Popen([sys.executable, "-m", "describe_screen.sample_window", title, text, "16",
                               "white", "black", *buttons], env=env, stdout=subprocess.PIPE, text=True)
    assert window.stdout and window.stdout.readline().startswith("ready")
    log = tmp / "daemon.log"  # all it says, kept for a post-mortem (a pipe nobody reads could fill up)
    daemon = subprocess.Popen([sys.executable, "-m", "describe_screen", "daemon", "--speech-file",
                               str(tmp / "s.wav")], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    while "ready" not in log.read_text(errors="replace"):
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    client = ipc.Client(tmp / "d.sock")
    try:
        yield client, env, tmp, daemon.pid
    finally:
        client.request({"cmd": "stop"})
        for proc in (daemon, window, xvfb):
            proc.terminate()
            proc.wait()


def measure(size: str, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"read: first words": [], "read: all text": [], "describe: first words": []}
    with running_daemon(size, "Report", LINES, ("OK", "Cancel")) as (client, env, _, _):
        for _ in range(runs):
            for keys, label in (("ctrl+alt+r", "read"), ("ctrl+alt+d", "describe")):
                client.request({"cmd": "stop"})
                time.sleep(0.5)
                before = len(client.request({"cmd": "status"})["result"]["spoken"])
                start = time.perf_counter()
                subprocess.run(["xdotool", "key", keys], env=env, check=True)
                first = None
                while True:
                    status = client.request({"cmd": "status"})["result"]
                    now = time.perf_counter()
                    if first is None and len(status["spoken"]) > before:
                        first = now - start
                    if first is not None and not status["busy"]:
                        break
                    time.sleep(0.01)
                times[f"{label}: first words"].append(first)
                if label == "read":
                    times["read: all text"].append(now - start)
    return times


def measure_push_to_talk(runs: int) -> list[float]:
    """Key release -> first words of the answer, for a 3 s spoken question (a WAV stands in for the
    microphone), answered by the text reader."""
    tmp = Path(tempfile.mkdtemp())
    question = tmp / "question.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(question),
                    "Could you tell me what the error message says?"], check=True)
    times = []
    with running_daemon("1280x720", "Error", "Error\nThe report could not be saved because the disk is full",
                        ("OK",), f'[voice]\nmicrophone = "{question}"\n') as (client, env, _, _):
        for _ in range(runs):
            client.request({"cmd": "stop"})
            time.sleep(1.0)
            subprocess.run(["xdotool", "keydown", "ctrl+alt+a"], env=env, check=True)
            time.sleep(3.0)  # the user speaks
            before = len(client.request({"cmd": "status"})["result"]["spoken"])
            start = time.perf_counter()
            subprocess.run(["xdotool", "keyup", "ctrl+alt+a"], env=env, check=True)
            while len(client.request({"cmd": "status"})["result"]["spoken"]) <= before:
                time.sleep(0.01)
            times.append(time.perf_counter() - start)
            while client.request({"cmd": "status"})["result"]["busy"]:
                time.sleep(0.05)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"date {time.strftime('%Y-%m-%d')}; runs {args.runs}\n")
    print("| screen | measure | median s | min s | max s |")
    print("|---|---|---|---|---|")
    for size in ("1280x720", "1920x1080"):
        for label, values in measure(size, args.runs).items():
            print(f"| {size} | {label} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    values = measure_push_to_talk(args.runs)
    print(f"| 1280x720 | ask by voice: key release to first answer words | {statistics.median(values):.2f} | "
          f"{min(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
