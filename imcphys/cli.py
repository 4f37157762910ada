"""The ``imcphys`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="imcphys: differentiable physics of in-memory-computing memory cells.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


@app.command()
def demo(out: Path = typer.Option(Path("demo-report"), help="output directory"),
         full: bool = typer.Option(False, help="full sizes (slower) instead of the quick tour"),
         seed: int = typer.Option(0, help="PRNG seed")) -> None:
    """Tour of every device family on the embedded cards: figures, summary.json and index.html in OUT."""
    from .demo import run_demo

    html, sections = run_demo(out, quick=not full, seed=seed)
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
def mc(card: Path = typer.Option(..., help="device card (TOML) with a \\[variability] table"),
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

    result = montecarlo(study, card=card, cells=cells, out=out, key=jax.random.key(seed), chunk_cells=chunk_cells,
                        memory_budget=memory_budget, resume=resume, progress=progress, **_parse_options(set_))
    typer.echo(f"{study}: {cells} cells in {result.manifest['chunks']} chunk(s) on {jax.device_count()} "
               f"device(s); results in {out}")
    if result.manifest["ber"] is not None:
        typer.echo(result.ber().to_series().to_string())


if __name__ == "__main__":
    app()
