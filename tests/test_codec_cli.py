"""`chromabeam encode` / `decode` from the command line: option ranges, the fail-fast checks
(one line, exit code 2), single-file mistakes (one line naming the file, exit code 1, nothing
written), the output lock, Ctrl-C and --chroma-subsampling. Fast: the shipped
multihypothesis weights on tiny generated images; no Beam pipeline runs except --allow-empty."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image, JpegImagePlugin

from pipeline import cli, decode, encode
from tests.conftest_models import BEAM_ARGS, one_thread
from tests.helpers import smooth_colour_field
from transforms import schema
from transforms.naming import LOCK_NAME

ROOT = Path(__file__).resolve().parents[1]
OTHER_MODEL = str(ROOT / "models" / "weights" / "eccv16-small.pt")


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


def _fail(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _line(err: str) -> str:
    """The one `chromabeam: error:` line (and no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("chromabeam: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0][len("chromabeam: error: ") :]


def _photo(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_colour_field(h, w, seed=seed)).save(path)
    return path


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> Path:
    """A good .cbc (and its .l.jpg beside it) from the shipped weights, via the CLI."""
    folder = tmp_path_factory.mktemp("enc")
    src = _photo(folder / "src" / "photo.png", seed=1)
    assert cli.main(["encode", str(src), "-o", str(folder / "photo.cbc"), "--device", "cpu"]) == 0
    assert (folder / "photo.cbc").stat().st_size > 0 and (folder / "photo.l.jpg").exists()
    return folder / "photo.cbc"


RANGE_CASES = [
    (["encode", "x.png", "o", "--quality", "101"],
     "argument --quality: expected an integer from 0 to 100, got '101'"),
    (["encode", "x.png", "o", "--quality", "-1"],
     "argument --quality: expected an integer from 0 to 100, got '-1'"),
    (["encode", "x.png", "o", "--l-quality", "0"],
     "argument --l-quality: expected an integer from 1 to 100, got '0'"),
    (["encode", "x.png", "o", "--max-bytes", "0"],
     "argument --max-bytes: expected an integer >= 1, got '0'"),
    (["encode", "x.png", "o", "--region", "0"],
     "argument --region: expected an integer >= 1, got '0'"),
    (["encode", "x.png", "o", "--render-size", "30"],
     "argument --render-size: expected an integer from 16 to 4096 and a multiple of 8, got '30'"),
    (["encode", "x.png", "o", "--batch-size", "-1"],
     "argument --batch-size: expected an integer >= 1, got '-1'"),
    (["encode", "x.png", "o", "--max-pixels", "0"],
     "argument --max-pixels: expected an integer >= 1, got '0'"),
    (["encode", "x.png", "o", "--device", "gpu"],
     "argument --device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["decode", "x", "o", "--jpeg-quality", "500"],
     "argument --jpeg-quality: expected an integer from 1 to 100, got '500'"),
    (["decode", "x", "o", "--batch-size", "0"],
     "argument --batch-size: expected an integer >= 1, got '0'"),
    (["decode", "x", "o", "--max-pixels", "nan"],
     "argument --max-pixels: expected an integer >= 1, got 'nan'"),
    (["decode", "x", "o", "--device", "cuda:x"],
     "argument --device: expected auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
    (["decode", "x", "o", "--chroma-subsampling", "422"],
     "argument --chroma-subsampling: invalid choice: '422' (choose from 'auto', '444', '420')"),
    (["encode", "x", "o", "--regoin", "8"],
     "unrecognised option --regoin; did you mean --region?"),
]  # fmt: skip


@pytest.mark.parametrize(
    "argv, message", RANGE_CASES, ids=[" ".join(c[0][3:]) for c in RANGE_CASES]
)
def test_bad_options_stop_at_parse_time(argv, message, capsys):
    code, err = _fail(argv, capsys)
    assert code == 2
    assert _line(err) == f"{message} (see: chromabeam {argv[0]} --help)"
    assert len(err.splitlines()) == 1, err


def test_help_shows_ranges_and_defaults(capsys):
    for job, texts in {
        "encode": ["[an integer from 0 to 100] (default: 50)", "(default: no limit)",
                   "[an integer >= 1] (default: 16)", "(default: 90)", "--allow-empty"],
        "decode": ["JPEG/WebP output quality [an integer from 1 to 100] (default: 95)",
                   "--chroma-subsampling", "(default: auto)", "--allow-empty"],
    }.items():  # fmt: skip
        with pytest.raises(SystemExit):
            cli.main([job, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for text in texts:
            assert text in out, (job, text)


def test_no_input_matched(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for job, given, shown in [
        ("encode", str(tmp_path / "none" / "*.png"), str(tmp_path / "none" / "*.png")),
        ("decode", str(tmp_path / "none" / "*.cbc"), str(tmp_path / "none" / "*.cbc")),
        ("decode", str(tmp_path / "empty"), str(tmp_path / "empty" / "**" / "*.cbc")),
    ]:
        code, err = _fail([job, given, str(tmp_path / "out")], capsys)
        assert code == 2, job
        assert _line(err) == f"no input matches '{shown}' (pass --allow-empty to accept that)"
        assert not (tmp_path / "out").exists()  # failed before any output was made


@pytest.mark.parametrize(
    "job", ["encode", pytest.param("decode", marks=pytest.mark.slow)]
)  # ~3 s each: one Beam run; decode's is the same code path
def test_allow_empty_writes_empty_tables(job, tmp_path, capsys):
    pa_schema = {"encode": schema.ENCODE_SCHEMA, "decode": schema.DECODE_SCHEMA}[job]
    out = tmp_path / job
    argv = [job, str(tmp_path / "none-*.x"), str(out), "--allow-empty", *BEAM_ARGS]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert pq.read_table(out / "results").schema.equals(pa_schema)
    assert pq.read_table(out / "results").num_rows == 0
    assert json.loads((out / "stats.json").read_text())["total"] == 0
    assert not (out / LOCK_NAME).exists()  # the lock is released


def test_output_is_a_file_or_not_writable(tmp_path, capsys, encoded):
    f = tmp_path / "afile"
    f.write_text("x")
    src = _photo(tmp_path / "in" / "p.png")
    for job, given in (("encode", str(src)), ("decode", str(encoded))):
        code, err = _fail([job, given, str(f)], capsys)
        assert (code, _line(err)) == (2, f"output {f} is a file, not a folder"), job
        code, err = _fail([job, given, str(f / "sub")], capsys)
        assert (code, _line(err)) == (2, f"output {f / 'sub'} is not writable: Not a directory")
        code, err = _fail([job, given, "-o", str(tmp_path / "in")], capsys)
        assert (code, _line(err)) == (2, f"output {tmp_path / 'in'} is a folder, not a file")


def test_batch_decode_refuses_luminance(tmp_path, capsys, encoded):
    argv = ["decode", str(encoded.parent), str(tmp_path / "o"), "--luminance", "x.png"]
    code, err = _fail(argv, capsys)
    assert code == 2 and _line(err).startswith("--luminance names the luminance file of one")


def test_single_file_modes_never_overwrite_what_they_read(tmp_path, capsys, encoded):
    """-o naming the input photo, the luminance file beside it, the .cbc itself or its
    luminance file is refused (exit code 2), and so are names no writer takes; nothing is
    written or changed."""
    src = _photo(tmp_path / "photo.png")
    lum = _photo(tmp_path / "holiday.l.jpg")  # a photo whose name is a luminance file's
    cbc = tmp_path / "k.cbc"
    cbc.write_bytes(encoded.read_bytes())
    (tmp_path / "k.l.jpg").write_bytes((encoded.parent / "photo.l.jpg").read_bytes())
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    cases = [
        (["encode", str(src), "-o", str(src)], f"-o {src}: a bitstream's name ends in .cbc"),
        (["encode", str(lum), "-o", str(tmp_path / "holiday.cbc")],
         f"writing {lum} would overwrite the input {lum}"),
        (["decode", str(cbc), "-o", str(cbc)], f"-o {cbc}: cannot write .cbc images (use .png"),
        (["decode", str(cbc), "-o", str(tmp_path / "k.l.jpg")],
         f"writing {tmp_path / 'k.l.jpg'} would overwrite the input {tmp_path / 'k.l.jpg'}"),
        (["decode", str(cbc), "-o", str(tmp_path / "k.tif")], f"-o {tmp_path / 'k.tif'}: cannot"),
    ]  # fmt: skip
    for argv, message in cases:
        code, err = _fail(argv, capsys)
        assert code == 2 and _line(err).startswith(message), (argv, err)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("case", ["missing", "text", "foreign", "other-model"])
def test_bad_weights(case, tmp_path, capsys, encoded):
    import torch

    path = {
        "missing": tmp_path / "none.pt",
        "text": tmp_path / "notes.txt",
        "foreign": tmp_path / "other.pt",
        "other-model": Path(OTHER_MODEL),
    }[case]
    if case == "text":
        path.write_text("not weights\n")
    if case == "foreign":
        torch.save({"w": torch.zeros(3)}, path)
    expected = {
        "missing": f"--weights {path}: no such file",
        "text": f"--weights {path}: not a checkpoint (not a torch file: it starts with "
        "b'not weig'); expected a torch checkpoint",
        "foreign": f"--weights {path}: not a state dict of model multihypothesis: ",
        "other-model": f"--weights {path}: a checkpoint of model eccv16-small, not multihypothesis",
    }[case]
    src = _photo(tmp_path / "in" / "p.png")
    for argv in (
        ["encode", str(src), str(tmp_path / "o")],
        ["encode", str(src), "-o", str(tmp_path / "p.cbc")],
        ["decode", str(encoded), str(tmp_path / "o")],
        ["decode", str(encoded), "-o", str(tmp_path / "p.png")],
    ):
        code, err = _fail([*argv, "--weights", str(path)], capsys)
        assert code == 2, argv
        assert _line(err).startswith(expected), (argv, err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "p.cbc").exists()


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "zero-byte file"), (b"GIF89a\x01\x00", "not a readable image")],
    ids=["zero-byte", "corrupt"],
)
def test_encode_one_bad_input(content, reason, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(content)
    code, err = _fail(["encode", "photo.jpg", "-o", "photo.cbc"], capsys)
    assert code == 1
    assert _line(err).startswith(f"photo.jpg: {reason}")
    assert sorted(os.listdir(tmp_path)) == ["photo.jpg"]  # no .cbc, no luminance file
    code, err = _fail(["encode", "nothere.jpg", "-o", "x.cbc"], capsys)
    assert (code, _line(err)) == (2, "nothere.jpg: no such file")
    code, err = _fail(["encode", "a.jpg", "b.jpg", "-o", "x.cbc"], capsys)
    assert (code, _line(err)) == (2, "encode -o takes exactly one input image")


def test_encode_one_that_cannot_fit_max_bytes_writes_nothing(tmp_path, capsys):
    src = _photo(tmp_path / "p.png")
    code, err = _fail(
        ["encode", str(src), "-o", str(tmp_path / "p.cbc"), "--max-bytes", "5"], capsys
    )
    assert code == 1
    assert _line(err).startswith(f"{src}: no bitstream fits in 5 bytes")
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


@pytest.mark.parametrize("case", ["truncated", "corrupt", "not-cbc"])
def test_decode_one_bad_bitstream(case, tmp_path, capsys, encoded):
    good = encoded.read_bytes()
    data = {
        "truncated": good[: len(good) // 2],
        "corrupt": good[:-6] + bytes([good[-6] ^ 0x10]) + good[-5:],
        "not-cbc": b"\x89PNG\r\n\x1a\n" + good[8:],
    }[case]
    bad = tmp_path / f"{case}.cbc"
    bad.write_bytes(data)
    (tmp_path / f"{case}.l.jpg").write_bytes(encoded.with_suffix(".l.jpg").read_bytes())
    out = tmp_path / "out.png"
    code, err = _fail(["decode", str(bad), "-o", str(out)], capsys)
    assert code == 1
    line = _line(err)
    assert line.startswith(f"{bad}: ") and line.count(str(bad)) == 1, line
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_decode_one_missing_files(tmp_path, capsys, encoded):
    lonely = tmp_path / "lonely.cbc"
    lonely.write_bytes(encoded.read_bytes())
    code, err = _fail(["decode", str(lonely), "-o", str(tmp_path / "x.png")], capsys)
    assert code == 1
    assert _line(err).startswith(f"{lonely}: no luminance file (lonely.l.jpg, lonely.l.png")
    code, err = _fail(["decode", str(tmp_path / "no.cbc"), "-o", str(tmp_path / "x.png")], capsys)
    assert (code, _line(err)) == (2, f"{tmp_path / 'no.cbc'}: no such file")
    argv = ["decode", str(encoded), "-o", str(tmp_path / "x.png"), "--luminance", "gone.png"]
    code, err = _fail(argv, capsys)
    assert (code, _line(err)) == (2, "--luminance gone.png: no such file")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    argv[-1] = str(tmp_path / "bad.png")
    code, err = _fail(argv, capsys)
    assert code == 1
    assert _line(err).startswith(f"{encoded}: luminance {tmp_path / 'bad.png'}: ")
    assert not (tmp_path / "x.png").exists()


def test_decode_chroma_subsampling(tmp_path, encoded):
    sampling = {}
    for mode in ("444", "420", "auto"):
        out = tmp_path / f"{mode}.jpg"
        argv = ["decode", str(encoded), "-o", str(out), "--chroma-subsampling", mode]
        assert cli.main([*argv, "--jpeg-quality", "80"]) == 0
        sampling[mode] = JpegImagePlugin.get_sampling(Image.open(out))
    assert sampling == {"444": 0, "420": 2, "auto": 2}  # auto: 4:2:0 below quality 90


def test_a_second_run_into_a_locked_folder_refuses(tmp_path, capsys, encoded):
    out = tmp_path / "out"
    out.mkdir()
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "job": "encode",
            "started": "2026-11-24T10:00:00Z", "token": "x"}  # fmt: skip
    (out / LOCK_NAME).write_text(json.dumps(lock))
    src = _photo(tmp_path / "in" / "p.png")
    for job, given in (("encode", str(src)), ("decode", str(encoded))):
        code, err = _fail([job, given, str(out), *BEAM_ARGS], capsys)
        assert code == 2
        assert _line(err).startswith(
            f"{out} is in use by another encode run, pid {os.getpid()} on {socket.gethostname()}"
        )
    assert json.loads((out / LOCK_NAME).read_text()) == lock  # left alone
    assert sorted(os.listdir(out)) == [LOCK_NAME]


@pytest.mark.parametrize("job", ["encode", "decode"])
def test_ctrl_c_prints_one_line_and_releases_the_lock(job, tmp_path, capsys, monkeypatch, encoded):
    from pipeline import progress

    def interrupted(p, cfg, inputs, args, threads=None):
        progress.tick(job, 1)
        raise KeyboardInterrupt

    module = {"encode": encode, "decode": decode}[job]
    monkeypatch.setattr(module, "build", interrupted)
    if job == "encode":
        _photo(tmp_path / "in" / "a.png", seed=1)
        _photo(tmp_path / "in" / "b.png", seed=2)
        given = str(tmp_path / "in")
    else:
        given = str(encoded.parent)  # photo.cbc (+ photo.l.jpg, not a .cbc)
    out = tmp_path / "out"
    code, err = _fail([job, given, str(out), *BEAM_ARGS], capsys)
    assert code == 130
    n = 2 if job == "encode" else 1
    assert (
        _line(err) == f"{job} interrupted after 1/{n} inputs; rerun the same command to start again"
    )
    assert not (out / LOCK_NAME).exists()
