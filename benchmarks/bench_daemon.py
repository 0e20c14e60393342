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
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from describe_screen import ipc
from describe_screen.virtual_display import start_xvfb

LINES = "\n".join(f"Quarterly report section {n}: revenue grew in the northern region by {n} percent"
                  for n in range(1, 13))


def measure(size: str, runs: int) -> dict[str, list[float]]:
    xvfb, display = start_xvfb(size + "x24")
    tmp = Path(tempfile.mkdtemp())
    env = dict(os.environ, DISPLAY=display, DESCRIBE_SCREEN_SOCKET=str(tmp / "d.sock"),
               DESCRIBE_SCREEN_CONFIG=str(tmp / "none.toml"), DESCRIBE_SCREEN_DATA=str(tmp / "data"))
    window = subprocess.Popen([sys.executable, "-m", "describe_screen.sample_window", "Report", LINES, "16",
                               "white", "black", "OK", "Cancel"], env=env, stdout=subprocess.PIPE, text=True)
    assert window.stdout and window.stdout.readline().startswith("ready")
    daemon = subprocess.Popen([sys.executable, "-m", "describe_screen", "daemon", "--speech-file",
                               str(tmp / "s.wav")], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    while daemon.stdout and "ready" not in daemon.stdout.readline():
        pass
    client = ipc.Client(tmp / "d.sock")
    times: dict[str, list[float]] = {"read: first words": [], "read: all text": [], "describe: first words": []}
    try:
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
    finally:
        client.request({"cmd": "stop"})
        for proc in (daemon, window, xvfb):
            proc.terminate()
            proc.wait()
    return times


def measure_push_to_talk(runs: int) -> list[float]:
    """Key release -> first words of the answer, for a 3 s spoken question (a WAV stands in for the
    microphone), answered by the text reader."""
    xvfb, display = start_xvfb("1280x720x24")
    tmp = Path(tempfile.mkdtemp())
    question = tmp / "question.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(question),
                    "Could you tell me what the error message says?"], check=True)
    (tmp / "config.toml").write_text(f'[voice]\nmicrophone = "{question}"\n')
    env = dict(os.environ, DISPLAY=display, DESCRIBE_SCREEN_SOCKET=str(tmp / "d.sock"),
               DESCRIBE_SCREEN_CONFIG=str(tmp / "config.toml"), DESCRIBE_SCREEN_DATA=str(tmp / "data"))
    window = subprocess.Popen([sys.executable, "-m", "describe_screen.sample_window", "Error",
                               "Error\nThe report could not be saved because the disk is full", "16", "white",
                               "black", "OK"], env=env, stdout=subprocess.PIPE, text=True)
    assert window.stdout and window.stdout.readline().startswith("ready")
    daemon = subprocess.Popen([sys.executable, "-m", "describe_screen", "daemon", "--speech-file",
                               str(tmp / "s.wav")], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    while daemon.stdout and "ready" not in daemon.stdout.readline():
        pass
    client = ipc.Client(tmp / "d.sock")
    times = []
    try:
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
    finally:
        client.request({"cmd": "stop"})
        for proc in (daemon, window, xvfb):
            proc.terminate()
            proc.wait()
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
