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


if __name__ == "__main__":
    app()
