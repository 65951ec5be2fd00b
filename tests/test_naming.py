"""Output naming (transforms.naming): relative paths kept for every kind of glob, collisions
resolved by a documented rule, independent of order; and the colliding tree of issue 9 end to
end through `colorize`."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import colorize
from tests.conftest_models import BEAM_ARGS, job_args, one_thread, write_tiny_checkpoint
from tests.helpers import encode, gray_photo
from transforms import naming
from transforms.fileio import expand_glob, read_table


def test_relative_local_glob_from_the_current_folder(tmp_path, monkeypatch):
    for rel in ("scans/box1/roll2/camera.tif", "scans/box3/camera.tif", "scans/top.tif"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    uris = expand_glob("scans/**/*.tif")
    assert all(os.path.isabs(u) for u in uris)  # fsspec returns absolute paths
    base = naming.pattern_base("scans/**/*.tif")
    assert base == "scans"
    got = {naming.relative_name(u, [base]) for u in uris}
    assert got == {"box1/roll2/camera.tif", "box3/camera.tif", "top.tif"}
    assert naming.relative_name(str(tmp_path / "scans/top.tif"), ["./scans/"]) == "top.tif"
    # a bare file name: the base is the current folder
    assert naming.pattern_base("top*.tif") == ""
    assert naming.relative_name(str(tmp_path / "top.tif"), [""]) == "top.tif"


@pytest.mark.parametrize(
    "uri, bases, rel",
    [
        ("/abs/scans/a/b.jpg", ["/abs/scans"], "a/b.jpg"),
        ("/abs/scans/a/b.jpg", ["/abs/scans/"], "a/b.jpg"),
        ("file:///abs/scans/a/b.jpg", ["/abs/scans"], "a/b.jpg"),
        ("memory:///x/sub/a.png", ["memory://x"], "sub/a.png"),
        ("memory://x/sub/a.png", ["memory:///x"], "sub/a.png"),
        ("gs://b/p/q/a.jpg", ["gs://b/p"], "q/a.jpg"),
        ("gcs://b/p/q/a.jpg", ["gs://b/p"], "q/a.jpg"),
        ("gs://b/p/a.jpg", ["s3://b/p"], "a.jpg"),  # other protocol: not its base
        ("/abs/scansX/a.jpg", ["/abs/scans"], "a.jpg"),  # a prefix, not a folder
        ("/abs/other/a.jpg", ["/abs/scans"], "a.jpg"),  # under no base: the file name
        ("/abs/scans/in/a.jpg", ["/abs/scans", "/abs/scans/in"], "a.jpg"),  # longest base
        ("/abs/scans/in/a.jpg", ["/abs/elsewhere", "/abs/scans"], "in/a.jpg"),  # several globs
    ],
)
def test_relative_name(uri, bases, rel):
    assert naming.relative_name(uri, bases) == rel


@pytest.mark.parametrize(
    "pattern, folder, base",
    [
        ("scans/**/*.tif", False, "scans"),
        ("/abs/scans/**", False, "/abs/scans"),
        ("memory://x/**", False, "memory://x"),
        ("gs://b/p/*.jpg", False, "gs://b/p"),
        ("scans/a.jpg", False, "scans"),
        ("scans/", True, "scans"),
        ("scans", True, "scans"),
        ("scans/img_[0-9].png", False, "scans"),
    ],
)
def test_pattern_base(pattern, folder, base):
    assert naming.pattern_base(pattern, folder) == base


def test_folder_inputs_and_base_keep_the_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uris = [str(tmp_path / "scans/box3/camera.tif"), str(tmp_path / "scans/top.tif")]
    out = naming.assign_outputs(uris, [naming.pattern_base("scans", folder=True)], ".png")
    assert out == {uris[0]: "box3/camera.png", uris[1]: "top.png"}
    # --base above the glob's prefix keeps more of the path
    out = naming.assign_outputs(uris, ["."], ".png")
    assert sorted(out.values()) == ["scans/box3/camera.png", "scans/top.png"]


def test_same_stem_other_extension_keeps_both():
    uris = ["/s/photo.bmp", "/s/photo.webp", "/s/other.jpg", "/s/sub/photo.tif"]
    out = naming.assign_outputs(uris, ["/s"], ".png")
    assert out == {
        "/s/photo.bmp": "photo.bmp.png",
        "/s/photo.webp": "photo.webp.png",
        "/s/other.jpg": "other.png",  # not in the colliding group: unchanged
        "/s/sub/photo.tif": "sub/photo.png",  # another folder: no collision
    }
    for perm in itertools.permutations(uris):  # whatever the order
        assert naming.assign_outputs(list(perm), ["/s"], ".png") == out


def test_collisions_by_case_and_second_order():
    uris = [
        "/s/Photo.jpg",  # same name as photo.jpg on a case-insensitive disk
        "/s/photo.JPG",
        "/s/photo",  # no extension: its stem is already photo
        "/s/photo.bmp.tif",  # stem photo.bmp: what rule 3 would name photo.bmp's output
        "/s/photo.bmp",
    ]
    stems = naming.assign_stems(uris, ["/s"])
    assert len({s.casefold() for s in stems.values()}) == len(uris)
    assert all(s.split(".")[0].casefold() == "photo" for s in stems.values())
    for perm in itertools.permutations(uris):
        assert naming.assign_stems(list(perm), ["/s"]) == stems


def test_same_relative_path_under_two_bases_gets_hashed_names():
    uris = ["/a/x.jpg", "/b/x.jpg", "/a/y.jpg"]
    out = naming.assign_outputs(uris, ["/a", "/b"], ".png")
    assert out["/a/y.jpg"] == "y.png"
    assert out["/a/x.jpg"] != out["/b/x.jpg"]
    for u in ("/a/x.jpg", "/b/x.jpg"):
        head, digest, ext = out[u].rsplit(".", 2)
        assert head == "x.jpg" and ext == "png" and len(digest) == naming.HASH_DIGITS


def test_group_key_contains_every_name_an_input_can_get():
    # resolving per group_key is the same as resolving all inputs at once
    rng = np.random.default_rng(0)
    names = ["a", "a.b", "A.b.c", "a.c", ".a", "a b", "b"]
    exts = ["", ".jpg", ".JPG", ".png", ".tif"]
    uris = sorted(
        {
            f"/r/{d}{rng.choice(names)}{rng.choice(exts)}"
            for d in ("", "d/", "D/")
            for _ in range(30)
        }
    )
    stems = naming.assign_stems(uris, ["/r"])
    assert len({s.casefold() for s in stems.values()}) == len(uris)
    for u, s in stems.items():
        assert naming.group_key(s) == naming.group_key(naming.relative_name(u, ["/r"]))


def test_is_under_and_marker_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert naming.is_under(str(tmp_path / "out/a.png"), "out")
    assert not naming.is_under(str(tmp_path / "outer/a.png"), "out")
    assert naming.done_marker("box3/camera.png") == ".chromabeam/done/box3/camera.png.json"


# --- end to end: the colliding tree of issue 9 ----------------------------------------------

TREE = [
    "scans/box1/roll2/camera.tif",
    "scans/box3/camera.tif",
    "scans/box3/coffee.tif",
    "scans/top.tif",
    "scans/box3/photo.bmp",
    "scans/box3/photo.webp",
]
EXPECTED = {
    "scans/box1/roll2/camera.tif": "box1/roll2/camera.jpg",
    "scans/box3/camera.tif": "box3/camera.jpg",
    "scans/box3/coffee.tif": "box3/coffee.jpg",
    "scans/top.tif": "top.jpg",
    "scans/box3/photo.bmp": "box3/photo.bmp.jpg",
    "scans/box3/photo.webp": "box3/photo.webp.jpg",
}
FORMATS = {".tif": "TIFF", ".bmp": "BMP", ".webp": "WEBP"}


def test_colliding_tree_gives_distinct_outputs_and_rows(tmp_path, monkeypatch):
    one_thread()
    ckpt = tmp_path / "tiny.pt"
    write_tiny_checkpoint(ckpt, seed=3)
    work = tmp_path / "work"
    for i, rel in enumerate(TREE):
        img = Image.fromarray(np.roll(gray_photo(40), 5 * i, axis=1), "L")
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(encode(img, FORMATS[os.path.splitext(rel)[1]]))
    monkeypatch.chdir(work)
    argv = ["scans/**/*", "out/colour", "--format", "jpeg", "--keep-original"]
    argv += ["--weights", str(ckpt)]
    colorize.run(job_args(colorize, [*argv, "--device", "cpu"]), list(BEAM_ARGS))
    out = Path("out/colour")
    written = sorted(
        str(p.relative_to(out))
        for p in out.rglob("*.jpg")
        if not {".chromabeam", "originals"} & set(p.relative_to(out).parts)
    )
    assert written == sorted(EXPECTED.values())
    rows = read_table(str(out / "results")).to_pylist()
    assert len(rows) == len(TREE)
    assert len({r["output_uri"] for r in rows}) == len(TREE)
    got = {os.path.relpath(r["source_uri"]): os.path.relpath(r["output_uri"], out) for r in rows}
    assert got == EXPECTED
    stats = json.loads((out / "stats.json").read_text())
    assert stats["outcomes"] == {"colorized": len(TREE)}
    # the copied originals follow the same stems (never two on one name)
    originals = sorted(str(p.relative_to(out / "originals")) for p in out.glob("originals/**/*.*"))
    assert originals == sorted(
        os.path.splitext(o)[0] + os.path.splitext(i)[1] for i, o in EXPECTED.items()
    )
    assert not (out / ".chromabeam.lock").exists()
