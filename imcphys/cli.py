"""The ``imcphys`` command line.

Errors are reported the same way by every command, including ones added later with ``@app.command()``: the
command group (:class:`_Group`) catches what a command raises and prints **one** ``error: ...`` line on stderr —
exit code 2 for bad input (a bad option, card, data file, study option or value: ``ValueError``, ``OSError``, a
usage error, the runtime error of a check under jit), 1 for an internal error. ``imcphys --debug ...`` (``--debug``
may also follow the command) prints the full traceback as well.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

#: Exceptions that mean bad input (exit 2), not a bug. So does the runtime error of a check under jit
#: (``eqx.error_if``), recognised by name so that this module does not import JAX before a command needs it.
INPUT_ERRORS = (ValueError, OSError, KeyError, NotImplementedError)
#: Typer's usage errors derive from this class (click's, or typer's own copy of click in recent versions): found
#: through the public ``typer.BadParameter`` so that both work.
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


#: What precedes the message of a check under jit (``eqx.error_if``) in the text of the error raised, whether
#: equinox raises it itself (``eqx.filter_jit``) or JAX wraps it (``jax.jit``: a ``JaxRuntimeError``).
_CHECK_MARKER = "EquinoxRuntimeError: "


def _failed_check(err: BaseException) -> bool:
    """Whether ``err`` is a check under jit that failed (bad input), not a bug."""
    name = type(err).__name__
    return name == "EquinoxRuntimeError" or (
        name in ("JaxRuntimeError", "XlaRuntimeError") and _CHECK_MARKER in str(err)
    )


def _message(err: BaseException) -> str:
    """The one-line message of ``err``: its own text, or for a check under jit the line equinox puts it on."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if _failed_check(err):
        text = next((line.split(_CHECK_MARKER, 1)[1] for line in text.splitlines() if _CHECK_MARKER in line), text)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines) or type(err).__name__


def _report(err: BaseException, debug: bool) -> int:
    """Print ``err`` as one ``error:`` line (with ``debug``, after its traceback) and return the exit code."""
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    if isinstance(err, _CLICK_ERROR):
        if type(err).__name__ == "NoArgsIsHelpError":  # `imcphys` alone: the help, as typer prints it
            err.show()
            return 2
        ctx = getattr(err, "ctx", None)
        hint = (
            f" (see '{ctx.command_path} --help')" if ctx is not None and type(err).__name__ != "ClickException" else ""
        )
        typer.echo(f"error: {err.format_message()}{hint}", err=True)
        return 2
    if isinstance(err, INPUT_ERRORS) or _failed_check(err):
        typer.echo(f"error: {_message(err)}", err=True)
        return 2
    if isinstance(err, typer.Abort):
        typer.echo("error: aborted", err=True)
        return 1
    typer.echo(
        f"error: internal error ({type(err).__name__}: {_message(err)}); "
        + ("please report it" if debug else "rerun with --debug for the traceback and report it"),
        err=True,
    )
    return 1


class _Group(TyperGroup):
    """The ``imcphys`` command group: every command's errors become one ``error:`` line (module docstring)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        debug = "--debug" in args[:end]
        if debug:  # accepted anywhere before "--": moved to where the group's own option is parsed
            args = ["--debug", *(a for i, a in enumerate(args) if i >= end or a != "--debug")]
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (typer.Exit, SystemExit):
            raise
        except BaseException as err:  # noqa: BLE001 - reported as one line (the traceback with --debug)
            if isinstance(err, KeyboardInterrupt):
                raise
            code = _report(err, debug)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Group,
    help="imcphys: differentiable physics of in-memory-computing memory cells.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="on an error, print the full traceback (any position)"),
) -> None:
    import jax

    from ._compilation import enable_compilation_cache
    from .plot import headless

    del debug  # read by the command group, which reports errors
    jax.config.update("jax_enable_x64", True)
    # compiled kernels persist between calls (per user; IMCPHYS_COMPILATION_CACHE=off opts out)
    enable_compilation_cache()
    headless()


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-report"), help="output directory"),
    full: bool = typer.Option(False, help="full sizes (slower) instead of the quick tour"),
    seed: int = typer.Option(0, help="PRNG seed"),
    section: list[str] = typer.Option([], help="run only this section (repeatable; default: the whole tour)"),
) -> None:
    """Tour of every device family on the embedded cards: figures, summary.json and index.html in OUT."""
    from .demo import run_demo
    from .experiments import EXPERIMENTS

    unknown = [n for n in section if n not in EXPERIMENTS]
    if unknown:
        raise typer.BadParameter(
            f"unknown demo section(s) {unknown}; known: {', '.join(EXPERIMENTS)}", param_hint="--section"
        )
    html, sections = run_demo(out, quick=not full, seed=seed, sections=section or None)
    total = sum(s.seconds for s in sections)
    typer.echo(f"wrote {html} and {out / 'summary.json'} ({len(sections)} sections, {total:.0f} s)")


def _parse_options(pairs: list[str]) -> dict:
    import json

    options = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"write study options as NAME=VALUE; got {pair!r}", param_hint="--set")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text  # a bare word is a string
    return options


def _list_studies() -> str:
    from .montecarlo import study_names
    from .montecarlo._registry import describe_study

    return "\n\n".join(describe_study(name) for name in study_names())


def _resume_command(args: dict) -> str:
    """The ``imcphys mc`` command that resumes an interrupted run (the same options, plus --resume)."""
    import shlex

    words = ["imcphys", "mc"]
    for name, value in args.items():
        flag = "--" + name.rstrip("_").replace("_", "-")
        if isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        elif value is not None and value is not False:
            words += [flag] if value is True else [flag, str(value)]
    return shlex.join([*words, "--resume"])


@app.command()
def mc(
    card: Path | None = typer.Option(None, help="device card (TOML) with a \\[variability] table"),
    study: str | None = typer.Option(None, help="registered Monte Carlo study, e.g. reram_pulse_read (see --list)"),
    cells: int | None = typer.Option(None, help="number of cells"),
    out: Path | None = typer.Option(None, help="run directory (chunks, run.json, result.nc)"),
    resume: bool = typer.Option(False, help="continue the run in OUT (same settings)"),
    chunk_cells: int | None = typer.Option(None, help="cells per chunk (default: fit --memory-budget)"),
    memory_budget: float = typer.Option(1e9, help="bytes per chunk in flight, when --chunk-cells is not given"),
    seed: int = typer.Option(0, help="PRNG seed"),
    set_: list[str] = typer.Option([], "--set", help="study option NAME=VALUE (JSON value), repeatable"),
    cpu_devices: int | None = typer.Option(None, help="split the CPU into this many JAX devices (one core each)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar with cells/s and ETA"),
    scheduler: str | None = typer.Option(
        None, help="run the chunks on this Dask scheduler (tcp://host:8786); needs imcphys[cluster]"
    ),
    scheduler_file: Path | None = typer.Option(
        None, help="run the chunks on the Dask scheduler of this scheduler file (dask-jobqueue, dask-mpi …)"
    ),
    list_: bool = typer.Option(False, "--list", help="list the studies with their options and defaults, and exit"),
) -> None:
    """Monte Carlo of a registered study over CELLS cells: chunked, resumable, sharded over every JAX device, or
    run as tasks on a Dask cluster (--scheduler, --scheduler-file). --list shows the studies and their options.
    Ctrl-C saves the chunk in flight and prints the command that resumes the run."""
    import jax

    if list_:
        typer.echo(_list_studies())
        return
    missing = [
        f"--{n.replace('_', '-')}"
        for n, v in (("card", card), ("study", study), ("cells", cells), ("out", out))
        if v is None
    ]
    if missing:
        typer.echo(f"error: missing option(s) {', '.join(missing)} (imcphys mc --list shows the studies)", err=True)
        raise typer.Exit(2)
    if scheduler is not None and scheduler_file is not None:
        typer.echo("error: give --scheduler or --scheduler-file, not both", err=True)
        raise typer.Exit(2)
    if cpu_devices is not None:
        # must precede the first use of a device; JAX otherwise runs a CPU as one device on one core
        jax.config.update("jax_num_cpu_devices", cpu_devices)
    from .montecarlo import montecarlo

    client = scheduler if scheduler is not None else scheduler_file
    try:
        result = montecarlo(
            study,
            card=card,
            cells=cells,
            out=out,
            key=jax.random.key(seed),
            chunk_cells=chunk_cells,
            memory_budget=memory_budget,
            resume=resume,
            progress=progress,
            client=client,
            **_parse_options(set_),
        )
    except KeyboardInterrupt as err:
        args = {
            "card": card,
            "study": study,
            "cells": cells,
            "out": out,
            "seed": seed,
            "chunk_cells": chunk_cells,
            "memory_budget": None if memory_budget == 1e9 else memory_budget,
            "set_": list(set_),
            "cpu_devices": cpu_devices,
            "no_progress": not progress,
            "scheduler": scheduler,
            "scheduler_file": scheduler_file,
        }
        typer.echo(f"{err or 'interrupted'}; resume with:\n  {_resume_command(args)}", err=True)
        raise typer.Exit(130) from None
    engine = f"Dask scheduler {client}" if client is not None else f"{jax.device_count()} device(s)"
    typer.echo(f"{study}: {cells} cells in {result.manifest['chunks']} chunk(s) on {engine}; results in {out}")
    if result.manifest["ber"] is not None:
        typer.echo(result.ber().to_series().to_string())


@app.command("fit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def fit_command(
    ctx: typer.Context,
    card: Path = typer.Option(..., help="parameter card (TOML) to start from"),
    data: list[Path] = typer.Option(..., help="measured CSV with units in its headers; repeat for a joint fit"),
    free: list[str] = typer.Option(
        ...,
        help="parameters to fit: --free NAME [NAME ...]; NAME:LO:HI bounds one "
        "to [LO, HI] in the card's unit of that parameter (NAME:LO: or "
        "NAME::HI for one side), e.g. --free i0 v0:0.1:0.5",
    ),
    out: Path = typer.Option(Path("fit-out"), help="output directory"),
    starts: int = typer.Option(8, help="solver starts (the card's values and the best screened candidates)"),
    candidates: int = typer.Option(64, help="random start candidates screened by their cost"),
    floor: float = typer.Option(0.0, help="current noise floor [A]: |I| at or below it is left out"),
    seed: int = typer.Option(0, help="PRNG seed of the start candidates"),
    quiet: bool = typer.Option(False, help="no progress bars"),
    kind: str | None = typer.Option(
        None, help="dc | pulse | vth | drift | retention | pump (default: from the CSV columns)"
    ),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="measurement option NAME=VALUE, e.g. source=ideal (Flash "
        "V_th from a pulse generator), initial=set; repeatable",
    ),
) -> None:
    """Fit the --free parameters of a card to measured data; write the fitted card, a JSON report and plots.

    The kind of measurement follows from the columns (or --kind): 't [s], V [V], I [A]' is a DC sweep,
    'amplitude [V], width [s], I [A]' a pulse response (read after each pulse), 'amplitude, width, Vth [V]'
    Flash V_th after each pulse, 't [s], G [S]' a PCM drift trace, 't [s], T [K], G [S]' a retention trace
    under the measured temperature, 'f_clk [Hz], V_out [V]' a Dickson pump's output. A drift trace of the
    statistical PCM model fits that device's g_prog and nu (its state): no card is written then.
    """
    import jax

    from .cards import read_card
    from .data import load_csv
    from .device import AbstractDevice
    from .fit import fit, measurement, parse_free
    from .plot import save

    stray = [a for a in ctx.args if a.startswith("-")]
    if stray:
        raise typer.BadParameter(f"unknown option(s) {stray}")
    names = list(free) + list(ctx.args)
    template = read_card(card)
    device = template.device()
    built = [measurement(kind, load_csv(path), device, floor=floor, **_parse_options(set_)) for path in data]
    fitted = built[0][0]
    if any(m is not fitted for m, _ in built[1:]):
        raise ValueError(
            "these measurements fit different things (a device's state, not the card): give one --data file at a time"
        )
    units = {n: p.get("unit") for n, p in template.provenance.items()} if fitted is device else {}
    specs = [parse_free(n, fitted, units.get(n.split(":")[0].strip())) for n in names]
    result = fit(
        fitted,
        [e for _, e in built],
        free=specs,
        key=jax.random.key(seed),
        starts=starts,
        candidates=candidates,
        card=template if fitted is device else None,
        progress=not quiet,
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = [result.save_report(out / "fit_report.json"), save(result.plot(), out / "fit.png")]
    if isinstance(fitted, AbstractDevice):
        paths.insert(0, result.save_card(out / f"{card.stem}_fitted.toml"))
    typer.echo(str(result.summary()))
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


@app.command("export")
def export_command(
    out: Path = typer.Argument(..., help="file to write (e.g. cell.vams)"),
    card: Path = typer.Option(..., help="device card (TOML) of a family with an official Verilog-A model"),
    format_: str = typer.Option("verilog-a", "--format", help="output format: verilog-a"),
) -> None:
    """Write the parameter set of the official model of CARD's family (a Verilog-A paramset, the model's own
    names and units, provenance as comments) to OUT, for a circuit simulator."""
    from .export import export_card

    try:
        path = export_card(card, out, fmt=format_)
    except (ValueError, FileNotFoundError) as err:  # bad card, family or format: the message says which
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
