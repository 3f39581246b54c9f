"""Test helpers shared by the packages: run a script under `torchrun` and read what each rank saved;
record the order in which `fit` calls a callback's hooks; list a command line's options without help
text; list a README's links that break on PyPI.

Every package tests its distributed path the same way (a script, two gloo ranks on the CPU, one file
per rank), its CLI's help and its README's links; this keeps those checks in one place.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import torch

from maskloop.loop import Callback

__all__ = ["HOOKS", "EventRecorder", "options_without_help", "relative_links", "run_torchrun"]

HOOKS = (
    "fit_start", "epoch_start", "batch_start", "loss",
    "after_backward", "step_end", "epoch_end", "fit_end",
)  # fmt: skip


class EventRecorder(Callback):
    """A callback that appends each hook's name (`"fit_start"`, ..., `"fit_end"`) to `events` as `fit`
    calls it. Subclass it to check the state at a hook: override `on_<hook>` and call `super()`."""

    def __init__(self) -> None:
        self.events: list[str] = []


def _recording(hook: str) -> Any:
    def record(self: EventRecorder, state: Any) -> None:
        self.events.append(hook)

    record.__name__ = f"on_{hook}"
    return record


for _hook in HOOKS:
    setattr(EventRecorder, f"on_{_hook}", _recording(_hook))


_LAUNCHER = """\
import os, runpy, sys

script = sys.argv.pop(1)  # the script sees argv = [script, out]
sys.argv[0] = script
runpy.run_path(script, run_name="__main__")
import torch.distributed as dist

if dist.is_available() and dist.is_initialized():
    dist.barrier()  # every rank has finished (and saved) before any rank leaves
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


def run_torchrun(
    script: str, out: str | os.PathLike[str], nproc: int = 2, timeout: float = 300
) -> list[Any]:
    """Run `script` (source text) under `torchrun --standalone` with `nproc` CPU processes.

    The script gets the folder `out` as `sys.argv[1]` and must write `out/rank{r}.pt` on each rank
    (loaded here with `weights_only=True`). Returns those objects in rank order; a failing run
    raises `RuntimeError` with the end of its stderr.

    Each rank runs the script through a small launcher (`_LAUNCHER`): once the script has returned,
    it waits for every rank at a barrier if a process group is still alive and then leaves with
    `os._exit(0)`, skipping the process group's destruction and the interpreter's finalization.
    Gloo's worker threads can abort a process there ("terminate called without an active
    exception", SIGABRT; seen twice in fresh-clone CI runs, once after the script had called
    `destroy_process_group` behind a barrier); the results are on disk by then, so the test reads
    what the script computed, never a crash of the teardown. A script that raises (or calls
    `sys.exit(n)`) exits as it would without the launcher.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive int, got {nproc!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "torchrun_script.py"
    path.write_text(textwrap.dedent(script))
    launcher = out / "torchrun_launcher.py"
    launcher.write_text(_LAUNCHER)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={nproc}", str(launcher), str(path), str(out)],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(nproc)]


def options_without_help(parser: argparse.ArgumentParser) -> list[str]:
    """Every option and sub-command of `parser` and its sub-parsers (recursively) whose help text is
    empty or suppressed, as `"<prog> <option or command>"`; a CLI test asserts the list is empty."""
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"parser must be an argparse.ArgumentParser, got {type(parser).__name__}")
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {
                c.dest for c in action._choices_actions if c.help and c.help != argparse.SUPPRESS
            }
            first = {sub: name for name, sub in reversed(action.choices.items())}  # not aliases
            for sub, name in first.items():
                if name not in helped:
                    missing.append(f"{parser.prog} {name}")
                missing += options_without_help(sub)
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


_ABSOLUTE = re.compile(r"(https?://|mailto:|#)")


def relative_links(markdown: str) -> list[str]:
    """The link and image targets in a Markdown text (inline `[..](target)`, reference `[id]: target`,
    HTML `src=`/`href=`) that are not absolute URLs or in-page anchors: on PyPI they break."""
    if not isinstance(markdown, str):
        raise TypeError(f"markdown must be a str, got {type(markdown).__name__}")
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)", markdown)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$", markdown, re.M)
    targets += re.findall(r"""(?:src|href)=["']([^"']+)""", markdown)
    return [t for t in targets if not _ABSOLUTE.match(t)]
