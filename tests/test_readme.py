"""The README's speed paragraph quotes BENCHMARKS.md: every figure in it is one the benchmarks measured, and
it says that model timings come from random weights (speed and memory, not quality)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readmes_speed_figures_are_measured_ones_and_say_random_weights() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    benchmarks = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    start = readme.index("Speed on a ")
    paragraph = " ".join(readme[start:readme.index("\n\n", start)].split())
    assert "random weights" in paragraph and "never quality" in paragraph, paragraph
    figures = re.findall(r"(\d+(?:\.\d+)?) ?(s|ms|x)\b", paragraph)
    assert len(figures) >= 6, paragraph
    for number, unit in figures:
        spelled = number + ("x" if unit == "x" else "")
        assert re.search(rf"(?<![\d.]){re.escape(spelled)}", benchmarks), f"{number} {unit} is not in BENCHMARKS.md"
    # the model figures are those of the fused decoder's latest quiet run, not of the run before it
    fused = benchmarks[benchmarks.index("### The fused decoder against llama.cpp"):]
    for figure in ("8.2", "10.9", "1.07x", "0.98x", "0.82"):
        assert figure in paragraph and figure in fused, figure
