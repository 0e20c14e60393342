"""A Tk window whose controls have no accessible names, for the explore and press tests.

Its buttons are pictures of their words (drawn with PIL, as games and some Java or Electron apps do),
its entry has no label of its own (a plain Label sits beside it), and its table is a grid of labels.
Run as `python tests/press_app.py X Y`; it prints "ready", its window and where Save is once drawn,
then one line per thing the user did ("Save pressed", "Save double-clicked", "Save right-clicked",
"Details pressed", "OK pressed"); Save also shows "Report saved" in the window.
"""

from __future__ import annotations

import sys
import tempfile
import tkinter as tk
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BG = "white"


def draw(words: str, folder: Path) -> Path:
    """The words drawn into a PNG file: the only thing that names the button (press_app_gtk.py shows the same)."""
    font = ImageFont.truetype(FONT, 20)
    left, top, right, bottom = font.getbbox(words)
    image = Image.new("RGB", (right - left + 40, bottom - top + 24), "#d9d9d9")
    ImageDraw.Draw(image).text((20 - left, 12 - top), words, font=font, fill="black")
    path = folder / f"{words}.png"
    image.save(path)
    return path


def picture(words: str, folder: Path) -> tk.PhotoImage:
    return tk.PhotoImage(file=str(draw(words, folder)))


def say(text: str) -> None:
    print(text, flush=True)


def main(x: int, y: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="press-app-"))
    root = tk.Tk()
    root.title("Monthly report")
    root.configure(bg=BG)
    root.geometry(f"640x430+{x}+{y}")
    font = ("DejaVu Sans", 18)
    tk.Label(root, text="Monthly report", font=("DejaVu Sans", 28), bg=BG).place(x=30, y=20)
    tk.Label(root, text="Name", font=font, bg=BG).place(x=30, y=90)
    entry = tk.Entry(root, font=font, width=18, relief="solid", borderwidth=1, highlightthickness=0,
                     insertontime=0)  # no blinking caret: a test cannot tell a caret from a change
    entry.insert(0, "March")
    entry.place(x=130, y=86)
    for r, row in enumerate((("Item", "Price"), ("Apples", "3 euros"), ("Pears", "5 euros"), ("Plums", "7 euros"))):
        for c, text in enumerate(row):
            tk.Label(root, text=text, font=font, bg=BG).place(x=30 + 200 * c, y=160 + 40 * r)
    images = {words: picture(words, folder) for words in ("Save", "Details", "OK")}

    def details() -> None:
        say("Details pressed")
        dialog = tk.Toplevel(root, bg=BG)
        dialog.title("Details")
        dialog.geometry(f"420x170+{x + 100}+{y + 120}")
        tk.Label(dialog, text="Saved three reports today", font=font, bg=BG).place(x=20, y=20)
        tk.Button(dialog, image=images["OK"], command=lambda: (say("OK pressed"), dialog.destroy()),
                  relief="raised", borderwidth=2).place(x=170, y=100)

    status = tk.Label(root, text="", font=font, bg=BG)
    status.place(x=30, y=330)

    def saved() -> None:
        say("Save pressed")
        status.configure(text="Report saved")

    save = tk.Button(root, image=images["Save"], command=saved, relief="raised", borderwidth=2)
    save.place(x=300, y=360)
    save.bind("<Double-Button-1>", lambda _: say("Save double-clicked"))
    save.bind("<Button-3>", lambda _: say("Save right-clicked"))
    tk.Button(root, image=images["Details"], command=details, relief="raised", borderwidth=2).place(x=440, y=360)
    root.update()
    # the top-level window (for playing the window manager) and where Save is on the screen
    say(f"ready {int(root.wm_frame(), 16)} {save.winfo_rootx()} {save.winfo_rooty()} {save.winfo_width()} "
        f"{save.winfo_height()}")
    root.mainloop()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
