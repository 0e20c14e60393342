"""A plain window with known text and buttons, for the demo and the tests.

Run as `python -m describe_screen.sample_window TITLE TEXT FONT_SIZE BG FG [BUTTON ...]`; it prints
"ready <window id>" once drawn, then runs until killed.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import tkinter as tk

    title, text, font_size, bg, fg = argv[0], argv[1], int(argv[2]), argv[3], argv[4]
    root = tk.Tk()
    root.title(title)
    root.configure(bg=bg)
    root.geometry("+0+0")
    for line in text.split("\n"):
        tk.Label(root, text=line, font=("DejaVu Sans", font_size), bg=bg, fg=fg, anchor="w").pack(
            fill="x", padx=20, pady=6)
    buttons = [b for b in argv[5:] if b]
    if buttons:
        row = tk.Frame(root, bg=bg)
        row.pack(pady=12)
        for label in buttons:
            tk.Button(row, text=label, font=("DejaVu Sans", font_size)).pack(side="left", padx=10)
    root.update()
    print("ready", root.winfo_id(), flush=True)
    root.mainloop()


if __name__ == "__main__":
    main(sys.argv[1:])
