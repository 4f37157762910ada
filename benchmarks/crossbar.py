"""Crossbar IR-drop solve: line-preconditioned CG (JAX, float64, relative residual 1e-8) against scipy's sparse LU
of the same nodal system (factorise once, solve every right-hand side), and the cost of one gradient.

Square M×M tiles of cells uniform in [10, 100] µS with 1 Ω wire segments (wires ~1e4× stiffer than cells), 64
input vectors uniform in [−0.2, 0.2] V. JAX: ``imcphys.solve_crossbar(method="cg")`` jitted, the 64 input vectors
split over every CPU core (one JAX device per core). scipy: ``splu`` (SuperLU, COLAMD ordering) of the 2·M² nodal
matrix, then one solve with the 64 right-hand sides. Gradient: d(Σ_k w_k·I_k)/d(G, v, r_wire) by implicit
differentiation, timed with its forward solve, relative to one solve.

    python benchmarks/crossbar.py --out benchmarks [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path

import _common
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from scipy.sparse.linalg import splu

import imcphys

R_WIRE, B = 1.0, 64


def nodal_matrix(g: np.ndarray, r_in: float, r_out: float) -> sp.csc_matrix:
    """The 2MN nodal matrix [[W_a + D, −D], [−D, W_b + D]] (input-line nodes first, row-major (i, j))."""
    m, n = g.shape

    def chain(k):
        w = np.full(k, 2.0)
        w[0] = w[-1] = 1.0
        return sp.diags([w, -np.ones(k - 1), -np.ones(k - 1)], [0, 1, -1])

    e0 = np.zeros(m)
    e0[0] = 1.0
    en = np.zeros(n)
    en[-1] = 1.0
    wa = sp.kron(chain(m), sp.eye(n)) / r_in + sp.diags(np.kron(e0, np.ones(n))) / r_in
    wb = sp.kron(sp.eye(m), chain(n)) / r_out + sp.diags(np.kron(np.ones(m), en)) / r_out
    d = sp.diags(g.ravel())
    return sp.bmat([[wa + d, -d], [-d, wb + d]], format="csc")


#: scipy's triangular solves take every right-hand side in turn; past this many seconds for the first 8, the
#: remaining ones are not run and the solve time is extrapolated (recorded as such in the JSON).
SCIPY_SOLVE_CAP_S = 300.0


def scipy_solve(g: np.ndarray, v: np.ndarray) -> tuple[float, float, np.ndarray, int]:
    """(factorisation s, solve s, output currents (M, B solved), RHS actually solved)."""
    m, n = g.shape
    k = nodal_matrix(g, R_WIRE, R_WIRE)
    f = np.zeros((2 * m * n, v.shape[1]))
    f[:n] = v / R_WIRE  # a[0, j] is row-major index j
    t0 = time.perf_counter()
    lu = splu(k)
    t1 = time.perf_counter()
    x = lu.solve(f[:, :8])
    t2 = time.perf_counter()
    solved = 8
    if (t2 - t1) * f.shape[1] / 8 <= SCIPY_SOLVE_CAP_S:
        x = np.concatenate([x, lu.solve(f[:, 8:])], axis=1)
        t2, solved = time.perf_counter(), f.shape[1]
    t_solve = (t2 - t1) * f.shape[1] / solved
    b = x[m * n :].reshape(m, n, -1)
    return t1 - t0, t_solve, b[:, -1] / R_WIRE, solved


def main(out: Path, quick: bool) -> None:
    sizes = [64, 128] if quick else [256, 512, 1024]
    mesh = Mesh(np.array(jax.devices()), ("rhs",))
    rhs_sharding = NamedSharding(mesh, PartitionSpec(None, "rhs"))
    solve = jax.jit(lambda g, v, r: imcphys.solve_crossbar_nodes(g, v, r, r, method="cg"))

    def loss(g, v, r, w):
        return jnp.sum(w * imcphys.solve_crossbar(g, v, r, r, method="cg"))

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
    rows, readme_rows = [], []
    for m in sizes:
        rng = np.random.default_rng(m)
        g = rng.uniform(10e-6, 100e-6, (m, m))
        v = rng.uniform(-0.2, 0.2, (m, B))
        w = rng.standard_normal((m, B))
        gj, vj, wj = jnp.asarray(g), jax.device_put(v, rhs_sharding), jax.device_put(w, rhs_sharding)
        t0 = time.perf_counter()
        sol = jax.block_until_ready(solve(gj, vj, R_WIRE))
        first = time.perf_counter() - t0
        t_solve, sol = _common.timed(solve, gj, vj, R_WIRE, repeat=1)
        t0 = time.perf_counter()
        jax.block_until_ready(grad(gj, vj, R_WIRE, wj))
        first_grad = time.perf_counter() - t0
        t_grad, _ = _common.timed(grad, gj, vj, R_WIRE, wj, repeat=1)
        row = {
            "size": m,
            "rhs": B,
            "jax_solve_s": t_solve,
            "jax_first_call_s": first,
            "cg_iterations": int(sol.iterations),
            "converged": bool(sol.converged),
            "jax_grad_s": t_grad,
            "jax_grad_first_call_s": first_grad,
            "grad_over_solve": t_grad / t_solve,
            "ir_drop_mean_rel": float(np.mean(np.abs(np.asarray(sol.currents) - g @ v)) / np.mean(np.abs(g @ v))),
        }
        print(row, flush=True)
        try:
            t_fact, t_lu_solve, cur_lu, solved = scipy_solve(g, v)
            cur = np.asarray(sol.currents)[:, :solved]
            row.update(
                {
                    "scipy_factorise_s": t_fact,
                    "scipy_solve_s": t_lu_solve,
                    "scipy_rhs_solved": solved,
                    "scipy_solve_extrapolated": solved < B,
                    "scipy_total_s": t_fact + t_lu_solve,
                    "speedup_vs_scipy": (t_fact + t_lu_solve) / t_solve,
                    "max_rel_diff_vs_scipy": float(np.max(np.abs(cur - cur_lu)) / np.max(np.abs(cur_lu))),
                }
            )
        except MemoryError as err:
            row["scipy_error"] = f"MemoryError: {err}"
        print(row, flush=True)
        rows.append(row)
        readme_rows.append(
            {
                "workload": f"Crossbar IR drop: {m}×{m} tile, {B} input vectors, 1 Ω segments, CG to 1e-8",
                "imcphys": f"{t_solve:.3g} s ({row['cg_iterations']} CG iterations); gradient {t_grad / t_solve:.2f}× "
                "a solve",
                "baseline": (
                    f"scipy splu {row['scipy_total_s']:.3g} s (factorise {t_fact:.3g} s"
                    + (
                        f"; solve extrapolated from {row['scipy_rhs_solved']} RHS)"
                        if row["scipy_solve_extrapolated"]
                        else ")"
                    )
                    if "scipy_total_s" in row
                    else row.get("scipy_error")
                ),
                "ratio": row.get("speedup_vs_scipy"),
                "ceiling_fraction": None,
                "note": "same run; ratio = scipy time / imcphys time",
            }
        )
    result = {
        "description": "M×M crossbar, cells uniform in [10, 100] µS, 1 Ω per wire segment on input and output lines, "
        f"{B} input vectors, float64; JAX: Schur-complement CG with exact line preconditioner, "
        "relative residual 1e-8; scipy: splu of the 2M² nodal matrix + one solve with all RHS",
        "sizes": rows,
        "rows": readme_rows,
        "bars": {
            "as fast as splu at 512": next((r.get("speedup_vs_scipy", 0) >= 1 for r in rows if r["size"] == 512), None),
            "faster than splu at 1024": next(
                (r.get("speedup_vs_scipy", 0) > 1 for r in rows if r["size"] == 1024), None
            ),
            "gradient <= 3x solve": all(r["grad_over_solve"] <= 3 for r in rows),
        },
    }
    _common.write(out, "crossbar", result)


if __name__ == "__main__":
    _common.cli(main, __doc__)
