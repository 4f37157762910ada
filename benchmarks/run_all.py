"""Run every benchmark one after another, merge their numbers into ``OUT/results.json`` and rewrite the README table.

Each ``benchmarks/<name>.py`` (any file here but this one and files starting with ``_``) takes ``--out DIR`` and
``--quick`` and writes ``DIR/<name>.json``. The benchmarks run one at a time, each in its own process, so that
none measures while another loads the machine. A benchmark that fails is recorded with its error and the others
still run; an expected one that is not there yet is listed as missing.

A benchmark's JSON may carry ``"rows"``: the lines it contributes to the README table, each a dict with
``workload`` (text), ``imcphys`` (text: the measured figure), ``baseline`` (text or null: the peer or baseline
measured side by side), ``ratio`` (number or null: baseline time / imcphys time, or the quantity the workload
names), ``ceiling_fraction`` (number or null: the fraction of a fused JAX kernel of the same arithmetic) and
``note`` (text). The README's table lives between the lines ``<!-- bench:start -->`` and ``<!-- bench:end -->``;
everything between them is replaced, nothing outside.

    python benchmarks/run_all.py --out benchmarks [--quick] [--readme README.md]
    python benchmarks/run_all.py --out benchmarks --only crossbar --merge   # re-run one, keep the others
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Benchmarks the project expects (written by the families' developers); missing ones are noted, not fatal.
EXPECTED = [
    "reram_pulses",
    "igzo_retention",
    "pcm_montecarlo",
    "flash_ispp",
    "fit",
    "write_verify",
    "crossbar",
    "montecarlo",
    "ferroelectric_pulses",
    "mram",
    "reram_sky130",
]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COLUMNS = ["Workload", "imcphys", "Baseline (same run)", "Ratio", "Fraction of fused-kernel ceiling", "Notes"]


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem != "run_all" and not p.stem.startswith("_"))


def run_one(name: str, out: Path, quick: bool) -> dict:
    """Run ``benchmarks/<name>.py`` and return its JSON, or a record of its failure."""
    cmd = [sys.executable, str(HERE / f"{name}.py"), "--out", str(out)] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    path = out / f"{name}.json"
    if proc.returncode != 0:
        return {"status": "failed", "seconds": seconds, "error": proc.stderr[-3000:]}
    if not path.exists():
        return {"status": "failed", "seconds": seconds, "error": f"{name}.py wrote no {path.name}"}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        return {"status": "failed", "seconds": seconds, "error": f"{path.name} is not valid JSON ({err})"}
    return {"status": "ok", "seconds": seconds, **data}


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        import jax

        info["jax"] = jax.__version__
    except ImportError:
        pass
    return info


def _cell(x: object, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) >= 0.01 else f"{x:.2g}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def table(results: dict) -> str:
    """The Markdown table of every benchmark's rows (failed and missing benchmarks get a row saying so)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, res in results["benchmarks"].items():
        if res.get("status") != "ok":
            lines.append(f"| {name} | failed | — | — | — | see results.json |")
            continue
        rows = res.get("rows") or [
            {"workload": name, "imcphys": f"{res['seconds']:.1f} s (whole script)", "note": "no rows reported"}
        ]
        for row in rows:
            frac = row.get("ceiling_fraction")
            workload = _cell(row.get("workload", name)) + (" (quick sizes)" if res.get("quick") else "")
            lines.append(
                "| "
                + " | ".join(
                    [
                        workload,
                        _cell(row.get("imcphys")),
                        _cell(row.get("baseline")),
                        _cell(row.get("ratio")),
                        "—" if frac is None else f"{100 * frac:.0f} %",
                        _cell(row.get("note")),
                    ]
                )
                + " |"
            )
    for name in results["missing"]:
        lines.append(f"| {name} | not run | — | — | — | benchmarks/{name}.py not present yet |")
    m = results["machine"]
    load = m.get("load_average_at_start")
    caption = (
        f"Measured {m['date']} on {m['cpu_count']} CPU core(s), {m['platform']}, JAX {m.get('jax', '?')}"
        + (f", load average {load[0]:.1f} at start" if load else "")
        + (" — quick sizes, not the official numbers" if results["quick"] else "")
    )
    earlier = {
        n: r["run_date"] for n, r in results["benchmarks"].items() if r.get("run_date") and r["run_date"] != m["date"]
    }
    if earlier:
        caption += "; " + ", ".join(f"{n} from the run of {d}" for n, d in sorted(earlier.items()))
    caption += ". Regenerate with `make bench`."
    return "\n".join(lines) + "\n\n" + caption


def rewrite_block(text: str, block: str) -> str:
    """``text`` with everything between the START and END marker lines replaced by ``block``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"the README needs exactly one {START} line followed by one {END} line")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--quick", action="store_true", help="small sizes: check that everything runs")
    ap.add_argument(
        "--readme",
        type=Path,
        default=HERE.parent / "README.md",
        help="README whose marked block gets the table ('' to skip)",
    )
    ap.add_argument("--only", nargs="*", help="run only these benchmarks")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the other benchmarks' results from OUT/results.json (each row keeps its run date)",
    )
    ap.add_argument(
        "--quick-for", nargs="*", default=[], help="run only these benchmarks at quick sizes (marked so in the table)"
    )
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    present = discover()
    names = [n for n in present if not a.only or n in a.only]
    results = {
        "machine": machine(),
        "quick": a.quick,
        "benchmarks": {},
        "missing": [n for n in EXPECTED if n not in present],
    }
    previous = a.out / "results.json"
    if a.merge and previous.exists():
        old = json.loads(previous.read_text())
        results["benchmarks"] = {
            n: {"run_date": old["machine"]["date"], **r}
            for n, r in old["benchmarks"].items()
            if n in present and n not in names
        }
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        quick = a.quick or name in a.quick_for
        res = {**run_one(name, a.out, quick), "quick": quick, "run_date": results["machine"]["date"]}
        results["benchmarks"][name] = res
        print(f"[bench] {name}: {res['status']} in {res['seconds']:.0f} s", flush=True)
        if res["status"] != "ok":
            print(res["error"], file=sys.stderr)
    for name in results["missing"]:
        print(f"[bench] {name}: benchmarks/{name}.py not present, skipped", flush=True)
    (a.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"[bench] wrote {a.out / 'results.json'}")
    if str(a.readme) and a.readme.name:
        if a.readme.exists() and START in a.readme.read_text():
            a.readme.write_text(rewrite_block(a.readme.read_text(), table(results)))
            print(f"[bench] rewrote the table in {a.readme}")
        else:
            print(f"[bench] {a.readme} has no {START} … {END} block; table not written", file=sys.stderr)
    if any(r["status"] != "ok" for r in results["benchmarks"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
