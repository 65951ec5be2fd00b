"""Make docs/before_after.jpg: the bundled samples (gray) next to `chromabeam colorize` output.

Run after `chromabeam colorize 'samples/*.jpg' out/samples`:
    python docs/make_before_after.py out/samples docs/before_after.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
HEIGHT = 220


def main(colour_dir: str, out: str) -> None:
    """Stack (gray | colour) pairs of every sample, one row each, scaled to HEIGHT."""
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
    sheet.save(out, quality=85)


if __name__ == "__main__":
    main(*sys.argv[1:3])
