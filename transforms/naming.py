"""How per-input output files are named: one rule for every job that writes a file per input
(colorize; the codec's encode/decode use the same functions).

The rule, in order:

1. **Relative path kept.** An output keeps its input's path relative to the input's base:
   the folder given as input, `--base`, or a glob's fixed prefix (`scans/**/*.tif` -> `scans`).
   With several bases the longest one that contains the input wins; an input under none keeps
   only its file name. Bases and inputs are compared in one normal form, so relative local
   globs, absolute paths, `file://`, `memory://` and object-store URLs (`gs://b/p/*.jpg`) all
   work: a relative local path is made absolute against the current folder, and a URL's path
   is compared without its protocol and leading slashes (`memory://x` contains
   `memory:///x/a.png`).
2. **Extension replaced.** `scans/box3/camera.tif` -> `box3/camera.png` (the job's format).
3. **Same stem, other extension: both keep their extension.** Where several inputs would get
   one output name, *each of them* (only that colliding group) keeps its whole input name and
   gets the output extension after it: `photo.bmp` + `photo.webp` -> `photo.bmp.png` +
   `photo.webp.png`. Names are compared ignoring case, so an output folder copied to a
   case-insensitive disk (macOS, Windows) still holds every file.
4. **Still the same name** (the same relative path under two bases, or a rule-3 name that
   another input already has): each input of that group also gets the first 8 hex digits of
   sha1(its URL): `x.jpg.1f0c2ab4.png`.

The result depends only on the *set* of inputs, never on their order. Adding an input that
collides with an earlier one renames both from then on (the earlier output stays where it was).

Every name an input can get starts with the input's folder and the part of its file name
before the first dot, so collisions can only happen within a group of inputs that share
`group_key(...)`: a Beam pipeline groups by that key (GroupByKey of strings) and resolves
each group with `resolve_group`; `assign_outputs` does the same for a list in memory.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterable, Sequence

_LOCAL = ("", "file", "local")
_ALIASES = {"gcs": "gs", "s3a": "s3", "abfss": "abfs"}
WILDCARDS = "*?["
STATE_DIR = ".chromabeam"  # per-output-folder bookkeeping (finished markers), never an input
DONE_DIR = STATE_DIR + "/done"
LOCK_NAME = ".chromabeam.lock"
HASH_DIGITS = 8


def normalise(uri: str) -> tuple[str, tuple[str, ...]]:
    """(protocol, path components) of a path or URL, the form names are compared in.

    Local paths (no protocol or `file://`) are made absolute against the current folder;
    other URLs lose their protocol's `//` and any leading slash (`memory:///x` == `memory://x`).
    """
    proto, sep, rest = uri.partition("://")
    if not sep:
        proto, rest = "", uri
    proto = _ALIASES.get(proto.lower(), proto.lower())
    if proto in _LOCAL:
        proto = ""
        rest = os.path.abspath(rest or ".").replace(os.sep, "/")
    parts = tuple(p for p in rest.split("/") if p and p != ".")
    return proto, parts


def is_under(uri: str, folder: str) -> bool:
    """Whether uri lies inside folder (both compared in normalise's form)."""
    proto, parts = normalise(uri)
    fproto, fparts = normalise(folder)
    return proto == fproto and len(parts) > len(fparts) and parts[: len(fparts)] == fparts


def pattern_base(pattern: str, folder: bool = False) -> str:
    """The base outputs are named relative to: a folder input itself (`folder=True`), else the
    folder part of the pattern before its first wildcard (`scans/**/*.tif` -> `scans`,
    `scans/a.jpg` -> `scans`, `a.jpg` -> `` i.e. the current folder)."""
    if folder and not any(c in pattern for c in WILDCARDS):
        return pattern.rstrip("/") or "/"
    cut = min((pattern.find(c) for c in WILDCARDS if c in pattern), default=len(pattern))
    head = pattern[:cut]
    return head.rstrip("/") if head.endswith("/") else posixpath.dirname(head)


def relative_name(uri: str, bases: Iterable[str]) -> str:
    """uri's path relative to the longest base that contains it (rule 1); its file name when
    no base does."""
    proto, parts = normalise(uri)
    best: tuple[str, ...] | None = None
    for base in bases:
        bproto, bparts = normalise(base)
        if bproto == proto and len(bparts) < len(parts) and parts[: len(bparts)] == bparts:
            if best is None or len(bparts) > len(best):
                best = bparts
    rel = parts[len(best) :] if best is not None else parts[-1:]
    return "/".join(rel) if rel else posixpath.basename(uri.rstrip("/"))


def _stem(rel: str) -> str:
    return posixpath.splitext(rel)[0]


def group_key(rel: str) -> str:
    """The key under which every possible name of `rel` falls: its folder and the part of its
    file name before the first dot, case-folded. Inputs with other keys never collide."""
    folder, name = posixpath.split(rel)
    return posixpath.join(folder, name.split(".", 1)[0]).casefold()


def _hashed(uri: str, rel: str, digits: int) -> str:
    return f"{rel}.{hashlib.sha1(uri.encode()).hexdigest()[:digits]}"


def _duplicates(stems: dict[str, str]) -> set[str]:
    seen: dict[str, list[str]] = {}
    for uri, stem in stems.items():
        seen.setdefault(stem.casefold(), []).append(uri)
    return {u for group in seen.values() if len(group) > 1 for u in group}


def resolve_group(entries: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{uri: output stem} for (uri, relative name) pairs that share one group_key (rules 2-4):
    the stem is the output path without its extension, e.g. `box3/camera` or `photo.bmp`.
    Deterministic for any order of entries; distinct stems (ignoring case) for distinct uris."""
    rels = dict(sorted(set(entries)))
    stems = {u: _stem(r) for u, r in rels.items()}
    for rename in (
        lambda u: rels[u],  # rule 3
        lambda u: _hashed(u, rels[u], HASH_DIGITS),  # rule 4
        lambda u: _hashed(u, rels[u], 40),
    ):
        dup = _duplicates(stems)
        if not dup:
            return stems
        for u in dup:
            stems[u] = rename(u)
    for n, u in enumerate(sorted(_duplicates(stems))):  # only crafted names get this far
        stems[u] = f"{stems[u]}.{n}"
    return stems


def assign_stems(uris: Sequence[str], bases: Iterable[str]) -> dict[str, str]:
    """{uri: output stem} for all inputs of a job (the whole naming rule, in memory)."""
    bases = list(bases)
    groups: dict[str, list[tuple[str, str]]] = {}
    for u in uris:
        rel = relative_name(u, bases)
        groups.setdefault(group_key(rel), []).append((u, rel))
    out: dict[str, str] = {}
    for entries in groups.values():
        out.update(resolve_group(entries))
    return out


def assign_outputs(uris: Sequence[str], bases: Iterable[str], ext: str) -> dict[str, str]:
    """{uri: output path relative to the output folder}, ext (e.g. `.png`) appended to each
    stem of assign_stems."""
    return {u: s + ext for u, s in assign_stems(uris, bases).items()}


def companion(stem: str, ext: str) -> str:
    """Another file of the same input beside its output, e.g. the copied original
    (`companion("box3/camera", ".tif")` -> `box3/camera.tif`); unique when stems are."""
    return stem + ext


def done_marker(relpath: str) -> str:
    """Where the finished marker of an output lives, relative to the output folder."""
    return f"{DONE_DIR}/{relpath}.json"
