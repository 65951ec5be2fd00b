"""Make a before/after sheet: the bundled samples (gray) next to `chromabeam colorize` output.

Run after `chromabeam colorize 'samples/*.jpg' out/samples`:
    python docs/make_before_after.py out/samples              # writes out/before_after.jpg
    python docs/make_before_after.py out/samples docs/before_after.jpg   # the README figure

It writes to out/ unless given an output path, so a trial run never rewrites the tracked
docs/before_after.jpg.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
HEIGHT = 220
DEFAULT_OUT = Path("out") / "before_after.jpg"  # in the current folder, as README says


def main(colour_dir: str, out: str | None = None) -> Path:
    """Stack (gray | colour) pairs of every sample, one row each, scaled to HEIGHT; write the
    sheet to `out` (default out/before_after.jpg) and return its path."""
    out_path = Path(out) if out else DEFAULT_OUT
    rows = []
    for gray_path in sorted((ROOT / "samples").glob("*.jpg")):
        colour_path = Path(colour_dir) / (gray_path.stem + ".png")
        pair = [Image.open(gray_path).convert("RGB"), Image.open(colour_path).convert("RGB")]
        pair = [im.resize((round(im.width * HEIGHT / im.height), HEIGHT)) for im in pair]
        row = Image.new("RGB", (sum(im.width for im in pair) + 8, HEIGHT), "white")
        row.paste(pair[0], (0, 0))
        row.paste(pair[1], (pair[0].width + 8, 0))
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), len(rows) * (HEIGHT + 8)), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, i * (HEIGHT + 8)))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path, quality=85)
    return out_path


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 3:
        sys.exit(f"usage: {sys.argv[0]} COLOUR_DIR [OUT_JPG (default: {DEFAULT_OUT})]")
    print(main(*sys.argv[1:3]))
