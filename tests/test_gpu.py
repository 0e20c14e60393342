"""The GPU path without a GPU: which CUDA libraries are preloaded and reported, and the decisions around
them (driver or not, libraries found or missing); doctor's lines for this CPU-only machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from describe_screen.commands.doctor import NOTE, OK, gpu_check
from describe_screen.vlm import onnx

NEEDED = ["libcublasLt.so.13", "libcublas.so.13", "libnvrtc.so.13", "libcurand.so.10", "libcufft.so.12",
          "libcudart.so.13", "libcudnn.so.9"]
SITE = "/venv/lib/python3.11/site-packages/nvidia"


def test_loaded_libraries_are_matched_by_file_name_and_missing_ones_named():
    mapped = [f"{SITE}/cu13/lib/libcudart.so.13", f"{SITE}/cu13/lib/libcublas.so.13",
              f"{SITE}/cu13/lib/libcublasLt.so.13", "/usr/lib/x86_64-linux-gnu/libc.so.6"]
    libraries = onnx.loaded_cuda_libraries(NEEDED, mapped)
    assert libraries.found["libcudart.so.13"] == f"{SITE}/cu13/lib/libcudart.so.13"
    # cuFFT and NVRTC are optional for onnxruntime; curand and cuDNN are not
    assert libraries.missing == ["libcurand.so.10", "libcudnn.so.9"]


def test_gpu_found_with_every_library_says_where_each_came_from():
    mapped = [f"{SITE}/cu13/lib/{name}" for name in NEEDED[:-1]] + [f"{SITE}/cudnn/lib/libcudnn.so.9"]
    check = gpu_check(listed=True, driver=True, libraries=onnx.loaded_cuda_libraries(NEEDED, mapped))
    assert check.status == OK
    assert f"libcudnn.so.9 from {SITE}/cudnn/lib/libcudnn.so.9" in check.says
    assert f"libcudart.so.13 from {SITE}/cu13/lib/libcudart.so.13" in check.says


def test_gpu_found_with_libraries_missing_names_exactly_those():
    libraries = onnx.loaded_cuda_libraries(NEEDED, [f"{SITE}/cu13/lib/libcudart.so.13"])
    check = gpu_check(listed=True, driver=True, libraries=libraries)
    assert check.status == NOTE
    assert "were not found: libcublasLt.so.13, libcublas.so.13, libcurand.so.10, libcudnn.so.9," in check.says
    assert f"Loaded: libcudart.so.13 from {SITE}/cu13/lib/libcudart.so.13." in check.says
    assert 'pip install "onnxruntime-gpu[cuda,cudnn]"' in check.fix


def test_no_gpu_loads_nothing_and_says_the_cpu_runs_models():
    check = gpu_check(listed=True, driver=False, libraries=onnx.CudaLibraries({}))
    assert check.status == OK and "No NVIDIA GPU driver" in check.says and "on the CPU" in check.says
    plain = gpu_check(listed=False, driver=True, libraries=onnx.CudaLibraries({}))
    assert plain.status == NOTE and "no CUDA support" in plain.says


def run_python(code: str, **env: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, **env))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_preload_is_skipped_without_a_driver():
    """No NVIDIA driver here: preload_cuda must not load (or look for) any CUDA library."""
    code = ("import onnxruntime as ort; calls = []; ort.preload_dlls = lambda *a, **k: calls.append(1)\n"
            "from describe_screen.vlm import onnx\n"
            "print(onnx.nvidia_driver(), onnx.preload_cuda().found, calls)")
    assert run_python(code).split() == ["False", "{}", "[]"]


def test_preload_with_a_driver_reports_each_library_as_found_on_disk_or_missing(tmp_path: Path):
    """A stand-in nvidia-smi makes the driver look present; the real onnxruntime.preload_dlls then runs and
    every library it needs is either loaded from a file that exists or named as missing."""
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: stand-in'\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    code = ("import json; from describe_screen.vlm import onnx; r = onnx.preload_cuda()\n"
            "print(json.dumps({'found': r.found, 'missing': r.missing, 'optional': sorted(r.optional)}))")
    report = json.loads(run_python(code, PATH=f"{tmp_path}:{os.environ['PATH']}"))
    assert set(report["found"]) >= {"libcudart.so.13", "libcudnn.so.9", "libcublas.so.13"}
    for name, where in report["found"].items():
        assert (where and Path(where).is_file()) or name in report["missing"] or name in report["optional"]
    # the CUDA session this machine can make still falls back to the CPU, which the runtime reports
    assert "CUDAExecutionProvider" in ort.get_available_providers()


def test_cuda_does_not_work_here_so_auto_installs_int8():
    from describe_screen.download import choose_precision

    assert onnx.cuda_works() is False
    assert choose_precision("auto") == "int8" == onnx.auto_precision("cpu")
    # "auto" follows the settings the runtime loads with: a named models.precision wins
    assert choose_precision("auto", provider="cuda", configured="fp16") == "fp16"
    assert choose_precision("q4", configured="fp16") == "q4"
    assert onnx.auto_precision("cuda") == "fp16"


def test_doctor_on_this_cpu_machine_names_the_provider_sessions_use(tmp_path: Path):
    env = dict(os.environ, DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"),
               DESCRIBE_SCREEN_CONFIG=str(tmp_path / "config.toml"), DESCRIBE_SCREEN_DATA=str(tmp_path / "data"))
    env.pop("DISPLAY", None)
    result = subprocess.run([sys.executable, "-m", "describe_screen", "doctor", "--json"], capture_output=True,
                            text=True, timeout=300, env=env)
    lines = {check["part"]: check for check in json.loads(result.stdout)}
    assert lines["GPU"] == {"part": "GPU", "status": "ok", "fix": "",
                            "says": "No NVIDIA GPU driver was found, so no CUDA library was loaded; models run on "
                                    "the CPU."}
    runtime = lines["Model runtime"]["says"]
    assert "a test session ran on CPUExecutionProvider" in runtime and "models run on the CPU" in runtime


def test_cuda_wheels_the_installer_adds_are_the_extras_of_this_onnxruntime_gpu():
    from importlib import metadata

    missing = onnx.missing_cuda_wheels()
    assert set(missing) <= {"nvidia-cuda-nvrtc", "nvidia-cuda-runtime", "nvidia-cufft", "nvidia-curand",
                            "nvidia-cudnn-cu13"}
    for name in missing:
        with pytest.raises(metadata.PackageNotFoundError):
            metadata.version(name)
