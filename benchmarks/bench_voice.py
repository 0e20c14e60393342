"""Voice question timings: a ~3 s question spoken by espeak-ng, from WAV file to text.

Prints one row per stage (median of --runs) with peers run in the same process for comparison:
our resampler against faster-whisper's own decoder (PyAV/FFmpeg), and the beam search we use against
greedy decoding. Real-time factor = ASR time / audio duration (below 1 is faster than speech).

    .venv/bin/python benchmarks/bench_voice.py --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUESTION = "Could you tell me what the error message says?"  # 3.0 s at 140 words a minute


def median_seconds(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall time of `runs` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="CTranslate2 CPU threads; 0 = its default")
    args = parser.parse_args()

    from faster_whisper import decode_audio

    from describe_screen.asr import SpeechRecognizer
    from describe_screen.microphone import SAMPLE_RATE, has_speech, load_wav, trim_silence

    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "q.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), QUESTION], check=True)
        rows: list[tuple[str, float, str]] = []
        t, audio = median_seconds(lambda: load_wav(wav, 30), args.runs)
        rows.append(("read WAV + resample 22.05->16 kHz", t, ""))
        peer, _ = median_seconds(lambda: decode_audio(str(wav)), args.runs)
        rows.append(("  peer: faster-whisper decode_audio (PyAV)", peer, f"ours/peer {t / peer:.2f}"))
    seconds = len(audio) / SAMPLE_RATE
    t, trimmed = median_seconds(lambda: trim_silence(audio), args.runs)
    rows.append(("trim silence", t, f"{len(trimmed) / SAMPLE_RATE:.2f} s kept"))
    t, _ = median_seconds(lambda: has_speech(trimmed), args.runs)
    rows.append(("speech check", t, ""))

    recognizer = SpeechRecognizer("auto", "cpu", threads=args.threads)
    start = time.perf_counter()
    recognizer.warm_up()
    rows.append(("ASR model load + warm-up (once)", time.perf_counter() - start, ""))
    asr, text = median_seconds(lambda: recognizer.transcribe(trimmed), args.runs)
    rows.append(("ASR tiny.en int8 CPU, beam 5 (used)", asr, f"RTF {asr / seconds:.3f}"))
    recognizer.beam_size = 1
    peer, greedy_text = median_seconds(lambda: recognizer.transcribe(trimmed), args.runs)
    rows.append(("  peer: same model, greedy (beam 1)", peer, f"beam5/greedy {asr / peer:.2f}"))

    print(f"question: {QUESTION!r} ({seconds:.2f} s of audio, {args.runs} runs, median)")
    print(f"heard:    {text!r} (greedy: {greedy_text!r})")
    print(f"model:    {recognizer.describe()}")
    print(f"{'stage':<44} {'ms':>9}  note")
    for name, t, note in rows:
        print(f"{name:<44} {t * 1000:9.1f}  {note}")


if __name__ == "__main__":
    main()
