"""The choices the settings file, the command line, the daemon and capture share, defined once."""

SCREEN_TARGETS = ("screen", "window", "pointer", "all", "focus")  # what capture.target and hotkeys grab
COMMAND_TARGETS = (*SCREEN_TARGETS, "clipboard")  # --target (a picture file comes with --image)
TARGETS = (*COMMAND_TARGETS, "image")  # everything capture() takes
DETAILS = ("brief", "full")
PROVIDERS = ("auto", "cuda", "cpu")  # where models run: onnxruntime's and speech recognition's
PRECISIONS = ("auto", "fp32", "fp16", "int8", "q4", "q4f16")
SPEECH_OUTPUTS = ("auto", "screen-reader", "pyttsx3")  # the user's screen reader, or our own voice
