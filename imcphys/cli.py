"""The ``imcphys`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="imcphys: differentiable physics of in-memory-computing memory cells.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    import jax

    from .plot import headless

    jax.config.update("jax_enable_x64", True)
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
        typer.echo(f"error: unknown demo section(s) {unknown}; known: {', '.join(EXPERIMENTS)}", err=True)
        raise typer.Exit(2)
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


@app.command()
def mc(
    card: Path = typer.Option(..., help="device card (TOML) with a \\[variability] table"),
    study: str = typer.Option(..., help="registered Monte Carlo study, e.g. reram_pulse_read"),
    cells: int = typer.Option(..., help="number of cells"),
    out: Path = typer.Option(..., help="run directory (chunks, run.json, result.nc)"),
    resume: bool = typer.Option(False, help="continue the run in OUT (same settings)"),
    chunk_cells: int | None = typer.Option(None, help="cells per chunk (default: fit --memory-budget)"),
    memory_budget: float = typer.Option(1e9, help="bytes per chunk in flight, when --chunk-cells is not given"),
    seed: int = typer.Option(0, help="PRNG seed"),
    set_: list[str] = typer.Option([], "--set", help="study option NAME=VALUE (JSON value), repeatable"),
    cpu_devices: int | None = typer.Option(None, help="split the CPU into this many JAX devices (one core each)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar with cells/s and ETA"),
) -> None:
    """Monte Carlo of a registered study over CELLS cells: chunked, resumable, sharded over every JAX device."""
    import jax

    if cpu_devices is not None:
        # must precede the first use of a device; JAX otherwise runs a CPU as one device on one core
        jax.config.update("jax_num_cpu_devices", cpu_devices)
    from .montecarlo import montecarlo

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
        **_parse_options(set_),
    )
    typer.echo(
        f"{study}: {cells} cells in {result.manifest['chunks']} chunk(s) on {jax.device_count()} "
        f"device(s); results in {out}"
    )
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
    try:
        template = read_card(card)
        device = template.device()
        built = [measurement(kind, load_csv(path), device, floor=floor, **_parse_options(set_)) for path in data]
        fitted = built[0][0]
        if any(m is not fitted for m, _ in built[1:]):
            raise ValueError(
                "these measurements fit different things (a device's state, not the card): give "
                "one --data file at a time"
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
    except (ValueError, FileNotFoundError) as err:  # bad card, data or names: the message says where
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
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
