"""The `chromabeam` command: one sub-command per job.

Each job's parser takes its own options; everything it does not know is handed to Beam's
PipelineOptions, so every Beam flag (--runner, --direct_num_workers, --project, ...) works. An
option neither the job nor Beam knows stops the command with the closest spelling.

A mistake ends with one line on stderr, `chromabeam: error: ...`, and exit code 2 (a wrong
command: options, paths, inputs, weights) or 1 (the job failed at its work); Ctrl-C ends with one
line and exit code 130. `-v` shows Beam's INFO logs, `--debug` also tracebacks and DEBUG logs.
Any job module with `add_arguments(parser)` and `run(args, beam_args)` gets all of this.
"""

from __future__ import annotations

import argparse
import atexit
import glob
import importlib
import logging
import os
import select
import signal
import sys
import threading
import time
import traceback

from pipeline import progress
from pipeline.checks import JobFailed, MissingInput, UsageError, unknown_options

JOBS = {
    "stage": ("pipeline.stage", "photos -> Parquet training shards + colour priors"),
    "train": ("models.train", "train a colorization model on staged shards"),
    "colorize": ("pipeline.colorize", "colorize grayscale photos at full resolution"),
    "evaluate": ("pipeline.evaluate", "metrics + report of models and baselines"),
    "encode": ("pipeline.encode", "colour photos -> luminance files + colour bitstreams (.cbc)"),
    "decode": ("pipeline.decode", "colour bitstreams (.cbc) + luminance -> colour photos"),
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: `chromabeam: error: ...` (exit code 2)."""

    def error(self, message: str):
        _error(f"{message} (see: {self.prog} --help)")
        self.exit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's valid range (from its validator) and default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        rng = getattr(action.type, "range_text", None)
        if rng and rng not in text:
            text += f" [{rng}]"
        if "%(default)" in text or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return text  # a flag: off unless given
        if not action.option_strings and action.nargs in ("+", None):
            return text  # a required positional
        if action.default is None:
            return text if "default" in text else text + " (default: none)"
        if "(default" in text:
            return text
        return text + " (default: %(default)s)"


def _common_options() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    g = common.add_argument_group("output and logging")
    g.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of chromabeam's own log lines (progress is INFO); Beam's own INFO lines "
        "show only with -v",
    )
    g.add_argument(
        "-v", "--verbose", action="store_true", help="also Beam's INFO logs, and tracebacks"
    )
    g.add_argument("--debug", action="store_true", help="DEBUG logs of everything, and tracebacks")
    return common


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per job. With `only` (the job on the command
    line) just that job's module is imported and given its options: importing every job (Beam,
    torch, matplotlib) would cost seconds a single-image `colorize -o` does not need."""
    parser = Parser(
        prog="chromabeam",
        description="Batch colorization of photo archives on Apache Beam + PyTorch. Options a "
        "job does not know are passed to Beam (e.g. --runner=DataflowRunner). A mistake stops "
        "with one line and exit code 2; -v shows details.",
        formatter_class=HelpFormatter,
    )
    common = _common_options()
    sub = parser.add_subparsers(dest="job", required=True, metavar="JOB")
    for name, (module, help_text) in JOBS.items():
        sp = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            formatter_class=HelpFormatter,
        )
        if only is not None and name != only:
            continue
        mod = importlib.import_module(module)
        mod.add_arguments(sp)
        sp.set_defaults(func=mod.run)
    return parser


def job_named(argv: list[str]) -> str | None:
    """The job a command line names (its first word that is not an option), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in JOBS else None


def setup_logging(level: str = "INFO", verbose: bool = False, debug: bool = False) -> None:
    """chromabeam's own loggers at `level`; Beam's INFO lines only when verbose."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "chromabeam", False) or type(h) is logging.StreamHandler:
            root.removeHandler(h)  # ours from an earlier call, or a basicConfig one
    handler = logging.StreamHandler(sys.stderr)
    handler.chromabeam = True  # type: ignore[attr-defined]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root.addHandler(handler)
    root.setLevel("DEBUG" if debug else level)
    beam_level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.getLogger("apache_beam").setLevel(beam_level)
    # Beam's local job service re-logs every worker's start-up warnings; keep errors only.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(
        logging.DEBUG if debug else logging.ERROR
    )


def _job_parser(parser: argparse.ArgumentParser, job: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[job]


def _resume_hint(job_parser: argparse.ArgumentParser, single: bool = False) -> str:
    """What to rerun after Ctrl-C (`single`: a one-file `-o` run, which resumes nothing)."""
    flags = {s for a in job_parser._actions for s in a.option_strings}
    if single:
        return "rerun the same command to start again"
    if "--skip-existing" in flags:
        return "rerun with --skip-existing to resume"
    if "--resume" in flags:
        return "rerun with --resume to continue"
    return "rerun the same command to start again"


def _error(message: str) -> None:
    print(f"chromabeam: error: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (0, 1, 2 or 130)."""
    console = argv is None
    argv = sys.argv[1:] if console else argv
    parser = build_parser(job_named(argv))
    args, rest = parser.parse_known_args(argv)
    job_parser = _job_parser(parser, args.job)
    setup_logging(args.log_level, args.verbose, args.debug)
    details = args.verbose or args.debug
    single = [a for a in rest if a.startswith("-") and not a.startswith("--")]
    if single:
        job_parser.error(f"unrecognised options: {' '.join(single)}")
    job_flags = {s for a in job_parser._actions for s in a.option_strings}
    for flag, close in unknown_options(rest, job_flags):
        hint = f"; did you mean {close}?" if close else " (neither chromabeam nor Beam knows it)"
        job_parser.error(f"unrecognised option {flag}{hint}")
    # As the console script, everything written to stderr (this process's and the Beam worker
    # processes') passes a gate that Ctrl-C closes at once, so no thread's or worker's
    # traceback follows the one line that says what happened.
    gate = StderrGate() if console and not details else None
    if console:  # a SIGINT to this process alone (kill -INT, a supervisor) reaches the workers
        signal.signal(signal.SIGINT, interrupt_with_children)
    try:
        args.func(args, rest)
        if console:  # done: a Ctrl-C now would only break the interpreter's shutdown
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        if details:
            traceback.print_exc()
        _interrupted(args.job, job_parser, console, gate, bool(getattr(args, "out_file", None)))
        return 130
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            raise
        if details:
            traceback.print_exc()
        _error(str(e.code))
        return 2
    except Exception as e:  # noqa: BLE001 - one line unless -v / --debug
        if gate is not None and gate.interrupted(0.05):
            # Ctrl-C that reached a Beam thread, which failed the run with its own error: the
            # gate already hides stderr, so say what happened, as for a KeyboardInterrupt
            _interrupted(args.job, job_parser, console, gate, bool(getattr(args, "out_file", None)))
            return 130
        return _failed(e, args.job, details)
    finally:
        if gate is not None:
            gate.restore()
    return 0


def console_main() -> None:
    """The `chromabeam` console script: main(), then exit_without_teardown with its code."""
    try:
        code = main()
    except SystemExit as e:  # argparse's --help and usage errors
        code = e.code
    exit_without_teardown(code)


def exit_without_teardown(code: int | str | None) -> None:
    """Exit as sys.exit(code) would, atexit handlers and stream flushes included, but without
    the interpreter's teardown of every module's objects, which costs 0.6 s once torch is
    imported (`python -c "import torch"` 2.33 s median here, 1.75 s exiting this way). While
    a thread that normal exit would wait for is alive, or under a profiler or tracer that
    writes its results after the script (`python -m cProfile`, coverage), it is sys.exit."""
    main_thread = threading.main_thread()
    waits = any(t is not main_thread and not t.daemon for t in threading.enumerate())
    if waits or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # logging.shutdown, multiprocessing's and weakref.finalize's hooks
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`chromabeam ... | head`): as sys.exit
            pass
    os._exit(code or 0)


def _failed(e: Exception, job: str, details: bool) -> int:
    """One line (the traceback too with -v / --debug) for a job's exception; its exit code."""
    if details:
        traceback.print_exc()
    if isinstance(e, (UsageError, MissingInput, JobFailed)):
        _error(str(e))
        return e.exit_code
    _error(
        f"{job} failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
        + ("" if details else " (run with -v for the traceback)")
    )
    return 1


def descendants(pid: int) -> list[int]:
    """The processes below `pid`, children first (Linux: /proc/PID/task/*/children; [] where
    there is no /proc)."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop(0)
        for listing in glob.glob(f"/proc/{parent}/task/*/children"):
            try:
                with open(listing) as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):  # the task ended meanwhile
                continue
            out += kids
            todo += kids
    return out


def interrupt_with_children(signum: int, frame) -> None:
    """SIGINT handler of the console script: SIGINT to every process below this one (Beam's
    worker processes, which a terminal's Ctrl-C reaches as members of its process group but a
    `kill -INT PID` does not: Beam's shutdown would wait for them forever), then
    KeyboardInterrupt as Python's own handler raises."""
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass
    raise KeyboardInterrupt


def _interrupted(
    job: str,
    job_parser: argparse.ArgumentParser,
    console: bool,
    gate: StderrGate | None,
    single: bool = False,
) -> None:
    """One line for Ctrl-C; as the console script, exit at once: Beam's threads and worker
    processes would otherwise print their tracebacks and keep the process alive."""
    state = progress.last_state()
    done = f" after {state[1]}/{state[2]} inputs" if state and state[0] == job else ""
    saved = progress.last_saved(job)
    done += f"; {saved}" if saved else ""
    message = f"chromabeam: error: {job} interrupted{done}; {_resume_hint(job_parser, single)}\n"
    if gate is not None:
        gate.close()
        os.write(gate.real, message.encode())
    else:
        print(message, end="", file=sys.stderr, flush=True)
    if console:
        logging.disable(logging.CRITICAL)
        sys.stdout.flush()
        os._exit(130)


class StderrGate:
    """Route file descriptor 2 through a pipe that a thread copies to the real stderr, until
    `close()` (at Ctrl-C): from then on nothing written to stderr, by this process or by the
    worker processes that inherited the descriptor, reaches the terminal. SIGINT also closes
    the gate from the signal wake-up descriptor, before any worker's traceback is copied."""

    def __init__(self):
        sys.stderr.flush()
        self.real = os.dup(2)
        self._r, w = os.pipe()
        os.dup2(w, 2)
        os.close(w)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._wake_lock = threading.Lock()  # the copy thread and main() both read it
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w)
        self.open = True
        self._thread = threading.Thread(target=self._copy, name="stderr-gate", daemon=True)
        self._thread.start()

    def interrupted(self, timeout: float = 0.0) -> bool:
        """Whether SIGINT arrived (the wake-up descriptor gets each signal's number), waiting
        up to `timeout` s for it. One reader at a time: with two, both could see the byte
        ready and the second would block reading it (main() hung at a Ctrl-C)."""
        with self._wake_lock:
            if self.open and select.select([self._wake_r], [], [], timeout)[0]:
                try:
                    if signal.SIGINT in os.read(self._wake_r, 256):
                        self.open = False
                except BlockingIOError:  # nothing left to read
                    pass
            return not self.open

    def _copy(self) -> None:
        while True:
            ready, _, _ = select.select([self._r, self._wake_r], [], [])
            if self._wake_r in ready:
                self.interrupted()
            if self._r in ready:
                time.sleep(0.02)  # a signal that arrives with the bytes wins
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    return
                if not self.interrupted():
                    os.write(self.real, chunk)

    def close(self) -> None:
        """Drop everything written to stderr from now on."""
        self.open = False

    def restore(self) -> None:
        """Put the real stderr back (normal end): what is in the pipe is still copied."""
        sys.stderr.flush()
        os.dup2(self.real, 2)
        self._thread.join(timeout=0.5)
        signal.set_wakeup_fd(self._old_wakeup)


if __name__ == "__main__":
    console_main()
