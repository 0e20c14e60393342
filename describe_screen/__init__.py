"""describe-screen: press a key, hear what is on the screen. Everything runs on this machine."""

import os

# onnxruntime reports usage to Microsoft (a DNS lookup of its events host) and keeps a database with a
# device id and model names under ~/.cache unless this is set before it is imported. Nothing about the
# user's screen may leave the machine, so every entry point (daemon, command, tests) imports this first.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
