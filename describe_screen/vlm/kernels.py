"""Our own native kernels (vlm/native: the 4-bit product and its onnxruntime custom operator), compiled on the
user's machine with its C compiler, once per source and compiler version, into the user's cache folder.

Built here rather than shipped: one small C library, compiled with this machine's compiler, needs no wheel per
platform. Without a compiler describe-screen still works (onnxruntime's own operators); `unavailable()` says why.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from describe_screen.i18n import _

NATIVE = Path(__file__).with_name("native")
SOURCES = ("q4.c", "ort_op.c")
HEADERS = ("q4.h",)
FLAGS = ("-O3", "-shared", "-fPIC", "-std=c11")
LIBRARIES = ("-lm",)
COMPILERS = ("cc", "gcc")
BUILD_SECONDS = 300

_reason: list[str] = []  # why the last library() call found none; empty when it found one


def unavailable() -> str | None:
    """Why library() returned None the last time it was called, in a plain sentence (None: it did not)."""
    return _reason[0] if _reason else None


def library(build: bool = True) -> Path | None:
    """The compiled kernel library for `SessionOptions.register_custom_ops_library`, building it when this
    source and compiler have none yet (unless not `build`); None when it cannot be had (no compiler, a failed
    build, or not built yet)."""
    _reason.clear()
    compiler = next(filter(None, map(shutil.which, COMPILERS)), None)
    if compiler is None:
        _reason.append(_("No C compiler (cc or gcc) is installed, so the fast 4-bit kernel cannot be built."))
        return None
    try:
        target = _target(compiler, _version(compiler))
        if target.is_file() or not build:
            return target if target.is_file() else None
        return _build(compiler, target)
    except (OSError, subprocess.SubprocessError) as error:
        _reason.append(_("The fast 4-bit kernel could not be built: {error}", error=_said(error)))
        return None


def isa(path: Path) -> str:
    """The instruction set the library's kernel uses on this CPU ("avx512vnni", or "scalar": too slow to use)."""
    import ctypes

    function = ctypes.CDLL(str(path)).ds_q4_isa
    function.restype = ctypes.c_char_p
    return function().decode()


@functools.cache
def _version(compiler: str) -> str:
    """The compiler's --version text (asked once a process: sessions are opened several times a load)."""
    return subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60, check=True).stdout


def _target(compiler: str, version: str) -> Path:
    """Where the library for these sources, flags and compiler version is kept."""
    from platformdirs import user_cache_path

    digest = hashlib.sha256("\0".join([version, *FLAGS, *LIBRARIES]).encode())
    for name in (*SOURCES, *HEADERS):
        digest.update(name.encode() + b"\0" + (NATIVE / name).read_bytes())
    folder = user_cache_path("describe-screen") / "kernels"
    return folder / f"describe_screen_kernels-{digest.hexdigest()[:20]}{'.dll' if os.name == 'nt' else '.so'}"


def _build(compiler: str, target: Path) -> Path:
    """Compile the library to a temporary name and rename it into place, so no process ever loads half a file."""
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=folder)
    os.close(handle)
    try:
        subprocess.run([compiler, *FLAGS, "-o", temporary, *(str(NATIVE / s) for s in SOURCES), *LIBRARIES],
                       capture_output=True, text=True, timeout=BUILD_SECONDS, check=True)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def _said(error: Exception) -> str:
    """The part of an error worth saying: a compiler's first error line, else the error itself."""
    if isinstance(error, subprocess.CalledProcessError):
        lines = [line for line in (error.stderr or "").splitlines() if "error" in line] or [str(error)]
        return lines[0].strip()
    return str(error)
