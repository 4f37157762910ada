"""The demo report: one self-contained HTML page (figures embedded) plus ``summary.json``."""

from __future__ import annotations

import base64
import datetime
import html
import platform
from pathlib import Path
from typing import Any

import jax

from ._version import __version__
from .experiments import Section, jsonable, write_json


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += _flatten(v, name + " / ")
        else:
            rows.append((name, v))
    return rows


def _fmt(v: Any) -> str:
    v = jsonable(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        shown = ", ".join(_fmt(x) for x in v[:8])
        return f"[{shown}{', …' if len(v) > 8 else ''}]"
    return html.escape(str(v))


def write_report(
    sections: list[Section],
    out: Path,
    *,
    title: str = "imcphys demo report",
    headlines: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``out/index.html`` and ``out/summary.json`` for ``sections`` (and a table of ``headlines``:
    dicts with ``claim``, ``value``, ``comparison``, ``threshold``, ``unit``, ``detail`` and ``met``, see
    :meth:`imcphys.experiments.Headline.row`); return the HTML path."""
    env = {
        "imcphys": __version__,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "devices": [str(d) for d in jax.devices()],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    summary = {
        "environment": env,
        "headlines": headlines or [],
        "seconds": {s.name: round(s.seconds, 2) for s in sections},
        **{s.name: s.numbers for s in sections},
    }
    write_json(summary, out / "summary.json")
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222}img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;font-size:13px}"
        "td{border-bottom:1px solid #eee;padding:2px 8px;vertical-align:top}figure{margin:1em 0}"
        "figcaption{font-size:13px;color:#555}h2{border-top:2px solid #333;padding-top:.5em}</style>"
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>imcphys {env['imcphys']} · JAX {env['jax']} · {env['date']} · "
        f"{sum(s.seconds for s in sections):.0f} s in all</p><ul>",
    ]
    parts += [f"<li><a href='#{s.name}'>{html.escape(s.title)}</a> ({s.seconds:.0f} s)</li>" for s in sections]
    parts.append("</ul>")
    if headlines:
        head = "<tr><th></th><th>claim</th><th>value</th><th>test</th><th>unit</th><th>details</th></tr>"
        rows = "".join(
            f"<tr><td>{'✔ met' if h['met'] else '✘ not met'}</td><td>{html.escape(h['claim'])}</td>"
            f"<td>{h['value']:.4g}</td><td>{html.escape(h['comparison'])} {h['threshold']:.4g}</td>"
            f"<td>{html.escape(h['unit'])}</td><td>{html.escape(h['detail'])}</td></tr>"
            for h in headlines
        )
        parts.append(f"<h2 id='headlines'>Headline claims</h2><table>{head}{rows}</table>")
    for s in sections:
        parts.append(f"<h2 id='{s.name}'>{html.escape(s.title)}</h2><p>{html.escape(s.text)}</p>")
        for fig in s.figures:
            data = base64.b64encode(Path(fig.path).read_bytes()).decode()
            parts.append(
                f"<figure><img alt='{html.escape(fig.caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
            )
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in _flatten(s.numbers))
        parts.append(f"<details><summary>numbers</summary><table>{rows}</table></details>")
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path
