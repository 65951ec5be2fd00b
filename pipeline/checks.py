"""Fail-fast checks: option validators for argparse and the checks a job runs on the driver
before any worker starts (inputs exist, weights are a checkpoint, the output is writable).

A check that fails raises `UsageError` (exit code 2: the command is wrong) or `JobFailed`
(exit code 1: the command was right but the work failed); `pipeline.cli.main` prints either as
one line `chromabeam: error: ...`. Validators raise `argparse.ArgumentTypeError`, so argparse
itself prints the option, the bad value and the valid range.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import math
import os
import posixpath
import re
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import fsspec

from transforms import naming
from transforms.fileio import expand_glob, join, read_json

if TYPE_CHECKING:  # models imports torch: a check must not
    from models.registry import Checkpoint

log = logging.getLogger(__name__)


class UsageError(SystemExit):
    """The command line is wrong (exit code 2). A SystemExit, so that code calling a job's
    run() outside the CLI stops with the message as before."""

    exit_code = 2


class MissingInput(FileNotFoundError):
    """An input the command names is not there (exit code 2); a FileNotFoundError, so that code
    calling a job's run() outside the CLI catches it as before."""

    exit_code = 2


class JobFailed(RuntimeError):
    """The command was valid but the job could not do its work (exit code 1)."""

    exit_code = 1


# --- argparse type= validators ---------------------------------------------------------------


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def number_in(
    lo: float | None = None,
    hi: float | None = None,
    *,
    integer: bool = False,
    lo_open: bool = False,
    hi_open: bool = False,
    multiple_of: int | None = None,
    range_text: str | None = None,
) -> Callable[[str], float | int]:
    """An argparse type: a finite float (or an int) within [lo, hi] (open ends as asked).

    The returned callable has `.range_text` (e.g. "an integer >= 1"), which the CLI's help
    formatter appends to the option's help and which every error message names.
    """
    kind = int if integer else float
    noun = "an integer" if integer else "a number"
    parts = []
    if lo is not None and hi is not None and not lo_open and not hi_open:
        parts.append(f"from {_fmt(lo)} to {_fmt(hi)}")
    else:
        if lo is not None:
            parts.append(f"{'>' if lo_open else '>='} {_fmt(lo)}")
        if hi is not None:
            parts.append(f"{'<' if hi_open else '<='} {_fmt(hi)}")
    if multiple_of:
        parts.append(f"a multiple of {multiple_of}")
    text = range_text or " ".join([noun, " and ".join(parts)]).strip()

    def parse(value: str):
        x = _number(value, kind, text)
        bad = (
            (lo is not None and (x <= lo if lo_open else x < lo))
            or (hi is not None and (x >= hi if hi_open else x > hi))
            or (multiple_of is not None and x % multiple_of)
        )
        if bad:
            raise argparse.ArgumentTypeError(f"expected {text}, got {value!r}")
        return x

    parse.range_text = text  # type: ignore[attr-defined]
    parse.__name__ = text  # argparse names the type in some messages
    return parse


finite_float = number_in(range_text="a finite number")
positive_float = number_in(0.0, lo_open=True)
non_negative_float = number_in(0.0)
positive_int = number_in(1, integer=True)
non_negative_int = number_in(0, integer=True)
percent = number_in(0.0, 100.0)
probability = number_in(0.0, 1.0)
quality = number_in(1, 100, integer=True)
temperature = number_in(0.0, lo_open=True)
strength = number_in(0.0)
RENDER_SIZES = (16, 4096, 8)  # the model input sizes the jobs take: least, most, multiple of
render_size = number_in(*RENDER_SIZES[:2], integer=True, multiple_of=RENDER_SIZES[2])


def is_render_size(size: int) -> bool:
    """Whether `size` is a model input size the jobs take (RENDER_SIZES)."""
    low, high, multiple = RENDER_SIZES
    return low <= size <= high and size % multiple == 0


crop_size = number_in(8, 4096, integer=True)
model_width = number_in(0.0, 4.0, lo_open=True)
hypotheses = number_in(1, 64, integer=True)


def device_name(text: str) -> str:
    """An argparse type: auto | cpu | cuda | cuda:N | mps."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


device_name.range_text = "auto, cpu, cuda, cuda:N or mps"  # type: ignore[attr-defined]


def eval_size(text: str) -> str:
    """An argparse type for `evaluate --size`: 'full' or an integer >= 16."""
    if text.lower() == "full":
        return "full"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 16:
        raise argparse.ArgumentTypeError(f"expected 'full' or an integer >= 16, got {text!r}")
    return str(n)


eval_size.range_text = "'full' or an integer >= 16"  # type: ignore[attr-defined]


def check_value(name: str, value: str, kind: Callable) -> float | int | str:
    """Validate a value outside argparse (e.g. inside `--model NAME,strength=S`) with the same
    validators; raises UsageError naming the setting."""
    try:
        return kind(value)
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"{name}: {e}") from None


def add_allow_empty(p: argparse.ArgumentParser) -> None:
    """The `--allow-empty` option of jobs that read a glob of inputs."""
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="accept inputs that match no file (write empty tables) instead of failing",
    )


# --- checks run on the driver before the pipeline starts ---------------------------------------


def match_inputs(
    patterns: Iterable[str], allow_empty: bool = False, exclude: str | None = None
) -> tuple[list[str], int]:
    """Expand the input globs on the driver: (patterns that match a file, number of distinct
    input files), as pipeline.common.MatchFiles counts them: a file matched by several
    patterns once, and files inside `exclude` (the job's output folder, whose files are never
    inputs) and hints sidecars (*.hints.json) left out.

    No file at all -> UsageError naming the patterns (unless allow_empty), and always when
    every file matched lies inside `exclude`; a pattern that matches nothing while others do
    is logged and dropped.
    """
    from transforms.hints import is_sidecar

    patterns = list(patterns)
    counts, inside, inputs = {}, 0, set()
    for pat in patterns:
        try:
            files = [f for f in expand_glob(pat) if not is_sidecar(f)]
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot list {pat}: {e}") from None
        ours = [f for f in files if naming.is_under(f, exclude)] if exclude else []
        counts[pat], inside = len(files) - len(ours), inside + len(ours)
        inputs.update(set(files).difference(ours))
    total = len(inputs)
    if total == 0 and inside:
        raise UsageError(
            f"all {inside} files matched are inside the output folder {exclude}, whose files "
            "are never inputs: write the outputs to another folder"
        )
    if total == 0 and not allow_empty:
        shown = " ".join(repr(p) for p in patterns)
        raise UsageError(f"no input matches {shown} (pass --allow-empty to accept that)")
    for pat, n in counts.items():
        if n == 0 and total:
            log.warning("no file matches %s", pat)
    return [p for p in patterns if counts[p]], total


def has_rows(folder: str) -> bool:
    """Whether a folder of Parquet parts holds at least one row."""
    import pyarrow.parquet as pq

    fs, path = fsspec.core.url_to_fs(folder)
    for f in fs.glob(join(path, "*.parquet")) if fs.exists(path) else []:
        with fs.open(f, "rb") as fh:
            if pq.ParquetFile(fh).metadata.num_rows:
                return True
    return False


def check_output_dir(uri: str, what: str = "output") -> None:
    """The output folder is a folder (or can be made) and is writable: a probe file is written
    and deleted. Raises UsageError otherwise."""
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        if fs.exists(path) and not fs.isdir(path):
            raise UsageError(f"{what} {uri} is a file, not a folder")
        fs.makedirs(path, exist_ok=True)
        probe = join(path, f".chromabeam-write-test-{uuid.uuid4().hex[:8]}")
        with fs.open(probe, "wb") as f:
            f.write(b"")
        fs.rm(probe)
    except UsageError:
        raise
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise UsageError(f"{what} {uri} is not writable: {reason}") from None


def check_output_file(uri: str) -> None:
    """A single output file: not an existing folder, and its folder writable."""
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.isdir(path):
        raise UsageError(f"output {uri} is a folder, not a file")
    parent = path.rsplit("/", 1)[0] if "/" in path else "."
    check_output_dir(fs.unstrip_protocol(parent) if "://" in uri else parent, "output folder")


def same_file(a: str, b: str) -> bool:
    """Whether fsspec URLs a and b name one file (local paths after resolving `..` and links;
    other filesystems by their normalised path)."""
    (fs_a, path_a), (fs_b, path_b) = fsspec.core.url_to_fs(a), fsspec.core.url_to_fs(b)
    if fs_a.protocol != fs_b.protocol:
        return False
    if "file" in fs_a.protocol or "local" in fs_a.protocol:
        if os.path.exists(path_a) and os.path.exists(path_b):
            return os.path.samefile(path_a, path_b)  # hard links too
        return os.path.realpath(path_a) == os.path.realpath(path_b)
    return posixpath.normpath(path_a) == posixpath.normpath(path_b)


def image_format(out_file: str, fmt: str) -> str:
    """The format `-o OUT_FILE` writes (colorize, decode): its extension's (.png, .jpg /
    .jpeg, .webp), else `fmt` (--format) for a name without one; a --format other than the
    default png that the extension contradicts is warned about; UsageError for an extension
    no writer takes."""
    from transforms.compose import EXTENSIONS

    ext = posixpath.splitext(out_file)[1].lower().lstrip(".")
    if not ext:
        return fmt
    if ext not in EXTENSIONS:
        known = ", ".join("." + e for e in EXTENSIONS)
        raise UsageError(f"-o {out_file}: cannot write .{ext} images (use {known})")
    ext = "jpeg" if ext == "jpg" else ext
    if fmt not in (ext, "png"):
        log.warning("-o %s: writing %s as its extension says, not --format %s", out_file, ext, fmt)
    return ext


def check_no_overwrite(outputs: Iterable[str], inputs: Iterable[str]) -> None:
    """UsageError if a file a single-file command (`-o`) writes is one it reads."""
    inputs = list(inputs)
    for out in outputs:
        for src in inputs:
            if same_file(out, src):
                raise UsageError(f"writing {out} would overwrite the input {src}")


def check_job_folder(output: str, job: str) -> None:
    """UsageError if `output` holds another job's finished run (its stats.json names another
    job): a rerun rebuilds the folder's tables, which would lose that job's."""
    try:
        other = read_json(join(output, "stats.json")).get("job")
    except (FileNotFoundError, ValueError, OSError, AttributeError):
        return
    if other and other != job:
        raise UsageError(
            f"output {output} holds the results of {'an' if other[0] in 'aeiou' else 'a'} "
            f"{other} run: write the {job} outputs "
            "to another folder"
        )


def check_decode(name: str, method: str | None, temperature: float | None, what: str) -> None:
    """A --decode / temperature the model `name` takes: UsageError for a method its decode
    does not know; a warning when it takes neither (it predicts ab directly). `what` starts
    the message (the option or model spec)."""
    from models.registry import decode_methods

    methods = decode_methods(name)
    if not methods and (method or temperature is not None):
        log.warning("%s: model %s predicts colours directly: decode settings ignored", what, name)
    elif method and method not in methods:
        raise UsageError(f"{what}: model {name} decodes with {', '.join(methods)}, not {method}")


def check_temperature_applies(name: str, method: str, temperature: float | None, what: str) -> None:
    """A warning when a temperature is given for a decode method of model `name` that does not
    apply it (models.registry.uses_temperature; a model with no decode methods at all is
    check_decode's warning). `what` starts the message."""
    from models.registry import decode_methods, uses_temperature

    if temperature is not None and decode_methods(name) and not uses_temperature(name, method):
        log.warning(
            "%s: model %s decodes %s without a temperature: temperature %g ignored",
            what,
            name,
            method,
            temperature,
        )


def check_weights(name: str | None, weights: str | None, label: str | None = None) -> Checkpoint:
    """The model's weights load: the file exists, is a torch checkpoint
    `{"config", "state_dict"}` or a state dict of the model, and fits the model exactly.
    Returns what read_checkpoint read (for describe / load_model, not to read it again).
    Raises UsageError naming the file and what was expected; `label` starts the message
    (default "--weights URI")."""
    import torch

    from models.registry import DEFAULT_MODEL, default_weights, skeleton

    asked, name = name, name or DEFAULT_MODEL
    uri = weights or default_weights(name)
    if uri is None:
        raise UsageError(f"model {name} ships no weights: pass --weights PATH_OR_URL")
    option = label or f"--weights {uri}"
    expected = f'a torch checkpoint {{"config", "state_dict"}} or a state dict of model {name}'
    obj, sha = check_checkpoint_file(uri, option, expected)
    if "state_dict" in obj and "config" in obj:
        config, state = obj["config"], obj["state_dict"]
        if not isinstance(config, dict) or not isinstance(config.get("name"), str):
            raise UsageError(f"{option}: its config is not a dict naming the model ({expected})")
        if asked and config["name"] != asked:  # the model asked for, not another one silently
            raise UsageError(f"{option}: a checkpoint of model {config['name']}, not {asked}")
        config = dict(config)
    else:
        config, state = {"name": name}, obj
    try:
        model = skeleton(config)  # names and shapes only: the job builds its own
    except Exception as e:  # noqa: BLE001 - an unusable config
        raise UsageError(f"{option}: its config does not build a model: {_one_line(e)}") from None
    want = set(model.state_dict())
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise UsageError(f"{option}: not a state dict; expected {expected}")
    missing, unexpected = sorted(want - set(state)), sorted(set(state) - want)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise UsageError(
            f"{option}: not a state dict of model {config['name']}: {', '.join(parts)}"
        )
    shapes = model.state_dict()
    for k, v in state.items():
        if hasattr(v, "shape") and tuple(v.shape) != tuple(shapes[k].shape):
            raise UsageError(
                f"{option}: {k} has shape {tuple(v.shape)}, model {config['name']} "
                f"expects {tuple(shapes[k].shape)}"
            )
    for k, v in state.items():  # a diverged training run saves NaN: it would blacken every image
        if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise UsageError(f"{option}: {k} holds NaN or infinite values (diverged training?)")
    return obj, sha


def check_checkpoint_file(uri: str, label: str, expected: str | None = None) -> Checkpoint:
    """The file at uri exists and holds a dict saved by torch (a checkpoint or a state dict);
    returns read_checkpoint's (that dict, sha256). Raises UsageError starting with `label`."""
    from models.registry import read_checkpoint

    expected = expected or 'a torch checkpoint {"config", "state_dict"} or a state dict'
    try:
        obj, sha = read_checkpoint(uri)
    except FileNotFoundError:
        raise UsageError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{label}: is a folder; expected {expected}") from None
    except Exception as e:  # noqa: BLE001 - pickle/zip/torch errors: not a checkpoint
        raise UsageError(
            f"{label}: not a checkpoint ({_why(uri, e)}); expected {expected}"
        ) from None
    if not isinstance(obj, dict):
        raise UsageError(f"{label}: holds a {type(obj).__name__}; expected {expected}")
    return obj, sha


def check_device(name: str) -> None:
    """A device the machine has (cuda / mps asked for explicitly must exist)."""
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device on this machine (use auto or cpu)")
        idx = int(name.split(":")[1]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise UsageError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: MPS is not available on this machine")


def check_stage_dir(stage_dir: str) -> None:
    """A `stage` output folder: priors.json and at least one shard (else MissingInput)."""
    fs, path = fsspec.core.url_to_fs(stage_dir)
    if not fs.isdir(path):
        raise MissingInput(
            f"{stage_dir}: no such folder (expected the output of `chromabeam stage`)"
        )
    shards = [f for f in fs.glob(join(path, "shards", "*.parquet")) if "part-empty" not in f]
    priors = fs.exists(join(path, "priors.json"))
    if not priors and not fs.exists(join(path, "shards")):
        raise MissingInput(f"{stage_dir}: no priors.json: not an output of `chromabeam stage`")
    if not shards:
        raise MissingInput(
            f"{stage_dir}: no shards in shards/: the `chromabeam stage` run kept no image"
        )
    if not priors:
        raise MissingInput(
            f"{stage_dir}: no priors.json: the `chromabeam stage` run did not finish (rerun it)"
        )


def _why(uri: str, e: BaseException) -> str:
    """Why torch could not load a file: not a torch file at all (its first bytes), else the
    error in one line."""
    try:
        with fsspec.open(uri, "rb") as f:
            head = f.read(8)
    except OSError:
        head = b""
    if head and not head.startswith((b"PK\x03\x04", b"\x80")):  # torch zip / legacy pickle
        return f"not a torch file: it starts with {head!r}"
    return _one_line(e)


def _one_line(e: BaseException, limit: int = 120) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    text = f"{type(e).__name__}: {text}" if type(e).__name__ not in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- unknown options ---------------------------------------------------------------------------


def beam_flags() -> set[str]:
    """Every option string Beam's PipelineOptions classes define (as get_all_options
    collects them: the argparse arguments of every PipelineOptions subclass)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    seen: dict[str, type] = {}
    todo = list(PipelineOptions.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        seen.setdefault(str(cls), cls)
    flags: set[str] = set()
    for cls in seen.values():
        sub = argparse.ArgumentParser(
            add_help=False, allow_abbrev=False, conflict_handler="resolve"
        )
        try:
            cls._add_argparse_args(sub)  # noqa: SLF001 - Beam's own way to collect them
        except Exception:  # noqa: BLE001 - a broken third-party options class
            continue
        for action in sub._actions:  # noqa: SLF001
            flags.update(s for s in action.option_strings if s.startswith("--"))
    return flags


def unknown_options(rest: list[str], job_flags: Iterable[str]) -> list[tuple[str, str | None]]:
    """The `--options` in rest that Beam does not know either, each with the closest known
    spelling among the job's and Beam's options (or None)."""
    if not any(a.startswith("--") and a != "--" for a in rest):
        return []  # nothing to check: no Beam import (single-file jobs start faster)
    beam = beam_flags()
    candidates = sorted(set(job_flags) | beam)
    out: list[tuple[str, str | None]] = []
    for arg in rest:
        if arg == "--":
            break
        if not arg.startswith("--"):
            continue
        flag = arg.split("=", 1)[0]
        if flag in beam:
            continue
        close = difflib.get_close_matches(flag, candidates, n=1, cutoff=0.75)
        if not close:  # --render_size for --render-size and the like
            alt = flag.replace("_", "-") if "_" in flag else "--" + flag[2:].replace("-", "_")
            close = [alt] if alt in candidates else []
        out.append((flag, close[0] if close else None))
    return out
