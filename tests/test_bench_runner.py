"""The benchmark runner rewrites only the README's marked table block, and tabulates every benchmark's rows."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("run_all", REPO / "benchmarks" / "run_all.py")
run_all = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_all)

RESULTS = {
    "machine": {"date": "today", "cpu_count": 2, "platform": "linux", "jax": "0.10", "load_average_at_start": [0.5]},
    "quick": False,
    "benchmarks": {
        "montecarlo": {
            "status": "ok",
            "seconds": 10.0,
            "rows": [
                {
                    "workload": "scaling",
                    "imcphys": "12 s",
                    "baseline": None,
                    "ratio": 2.345,
                    "ceiling_fraction": 0.412,
                    "note": "a|b",
                }
            ],
        },
        "crossbar": {"status": "failed", "seconds": 1.0, "error": "boom"},
        "fit": {"status": "ok", "seconds": 3.0},
    },
    "missing": ["flash_ispp"],
}


def test_rewrites_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    before, after = "# imcphys\n\nintro\n\n", "\n\n## After\ntext\n"
    readme.write_text(f"{before}{run_all.START}\nold table\n{run_all.END}{after}")
    block = run_all.table(RESULTS)
    new = run_all.rewrite_block(readme.read_text(), block)
    assert new == f"{before}{run_all.START}\n{block}\n{run_all.END}{after}"
    assert run_all.rewrite_block(new, block) == new  # idempotent


def test_table_has_a_row_per_result():
    lines = run_all.table(RESULTS).splitlines()
    assert lines[2] == "| scaling | 12 s | — | 2.35 | 41 % | a\\|b |"
    assert lines[3].startswith("| crossbar | failed")
    assert lines[4].startswith("| fit | 3.0 s (whole script)")
    assert lines[5].startswith("| flash_ispp | not run")
    assert "load average 0.5" in lines[-1]


@pytest.mark.parametrize(
    "text", ["no markers", f"{run_all.END}\n{run_all.START}\n", f"{run_all.START}\n{run_all.START}\n{run_all.END}\n"]
)
def test_bad_markers_are_refused(text):
    with pytest.raises(ValueError, match="bench:start"):
        run_all.rewrite_block(text, "x")


def test_merge_keeps_other_benchmarks_with_their_run_date(tmp_path, monkeypatch):
    """``--merge --only fit`` re-runs fit and carries the other results over, the caption naming their run."""
    import json
    import sys

    (tmp_path / "results.json").write_text(
        json.dumps({**RESULTS, "machine": {**RESULTS["machine"], "date": "yesterday"}})
    )
    monkeypatch.setattr(run_all, "discover", lambda: ["crossbar", "fit", "montecarlo"])
    monkeypatch.setattr(
        run_all,
        "run_one",
        lambda name, out, quick: {"status": "ok", "seconds": 1.0, "rows": [{"workload": "new fit", "imcphys": "1 s"}]},
    )
    monkeypatch.setattr(sys, "argv", ["run_all", "--out", str(tmp_path), "--only", "fit", "--merge", "--readme", ""])
    with pytest.raises(SystemExit):  # crossbar carried over as failed: the runner still exits non-zero
        run_all.main()
    merged = json.loads((tmp_path / "results.json").read_text())
    assert merged["benchmarks"]["fit"]["rows"][0]["workload"] == "new fit"
    assert merged["benchmarks"]["montecarlo"]["run_date"] == "yesterday"
    assert "montecarlo from the run of yesterday" in run_all.table(merged).splitlines()[-1]
