"""describe-screen: press a key, hear what is on the screen. Everything runs on this machine."""

__version__ = "0.1.0"
