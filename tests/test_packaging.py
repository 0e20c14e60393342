"""A normal (non-editable) install: the wheel carries the model manifests, so `models list` finds them with
no source tree in sight."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from describe_screen import models

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installed_in_a_fresh_venv_lists_every_manifest(tmp_path: Path) -> None:
    # `pip install .` builds a wheel and installs it; here the build runs with this environment's
    # setuptools (no download), from a clean copy of what the build reads (no installed models, no caches),
    # then the wheel goes into a fresh venv.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "describe_screen", source / "describe_screen",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (source / "models").mkdir()
    for path in [*ROOT.glob("models/*.toml"), ROOT / "pyproject.toml", ROOT / "setup.py", ROOT / "README.md"]:
        shutil.copy2(path, source / path.relative_to(ROOT))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("describe_screen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    expected = {f"describe_screen/manifests/{p.name}" for p in (ROOT / "models").glob("*.toml")}
    assert expected and expected <= set(names)
    assert "describe_screen/data/probe.onnx" in names
    native = {f"describe_screen/vlm/native/{p.name}" for p in (ROOT / "describe_screen/vlm/native").iterdir()}
    assert {"describe_screen/vlm/native/ort_op.c", "describe_screen/vlm/native/q4.h"} <= native <= set(names)
    catalog = "describe_screen/locale/{}/LC_MESSAGES/describe_screen.po"  # the messages, read from it at run time
    assert {catalog.format(code) for code in ("de", "fr", "es", "pt", "it")} <= set(names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # --no-deps: `models list` needs none of them, and the test stays offline and quick
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"DESCRIBE_SCREEN_CONFIG": str(tmp_path / "config.toml"), "DESCRIBE_SCREEN_DATA": str(tmp_path / "data")}
    listed = subprocess.run([str(env_dir / "bin" / "describe-screen"), "models", "list"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    for spec in models.available():
        assert f"{spec.name}: {spec.family}, does " in listed.stdout
    where = subprocess.run([str(python), "-c", "import describe_screen.models as m; print(m.MANIFEST_DIR)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(env_dir)) and where.endswith("describe_screen/manifests")
