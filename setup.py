"""Packaging that pyproject.toml cannot say: models/*.toml ship inside the wheel as describe_screen/manifests.

The folder stays at the top of the source tree, where people read and edit it; describe_screen.models finds
it there (source tree, editable install) or inside the installed package (a normal install from a wheel).
The C sources in describe_screen/vlm/native ship too: vlm/kernels.py compiles them on the user's machine.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["describe_screen*"]), "describe_screen.manifests"],
    package_dir={"describe_screen.manifests": "models"},
    package_data={"describe_screen": ["data/*", "locale/*/LC_MESSAGES/*.po", "vlm/native/*.c", "vlm/native/*.h"],
                  "describe_screen.manifests": ["*.toml"]},
)
