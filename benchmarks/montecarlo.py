"""Monte Carlo at scale: time and peak memory from 1e4 to 1e7 cells, compile times, gradient cost, the fraction of a
plain fused JAX kernel of the same arithmetic, the speed-up of 2 CPU host devices over 1, a quick ``imcphys mc``
with a cold and a warm compilation cache, and in-process against a Dask LocalCluster of 2 workers.

Workload: the registered ``reram_pulse_read`` study on the ReRAM card (its device-to-device spread, cycle-to-cycle
noise; one SET and one RESET pulse of 100 ns at 25 °C, 16 Heun steps each, read after each).
Each scaling point runs in its own process (fresh memory) with a fixed chunk budget; its peak RSS is sampled with
psutil every 20 ms. Writes ``OUT/montecarlo.json``.

    python benchmarks/montecarlo.py --out DIR [--quick] [--write-verify-only | --cluster-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "devices" / "reram_stanford_v1.toml"
OPTIONS = {"temperatures": [298.15], "fixed_steps": 16}
BUDGET = 256e6  # bytes of chunks in flight

CHILD = """
import json, os, resource, sys, time
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", int(sys.argv[3]))
from imcphys.montecarlo import get_study, montecarlo
study = get_study(sys.argv[8], card=sys.argv[1], **json.loads(sys.argv[6]))
chunk = int(sys.argv[7]) or None
if chunk:  # warm-up run of one chunk of the same shape: the timed run then excludes compilation
    montecarlo(study, cells=chunk, key=jax.random.key(0), out=sys.argv[4] + "_warm", chunk_cells=chunk,
               progress=False)
t0, c0 = time.perf_counter(), time.process_time()
r = montecarlo(study, cells=int(sys.argv[2]), key=jax.random.key(0), out=sys.argv[4], chunk_cells=chunk,
               memory_budget=float(sys.argv[5]), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "loadavg": os.getloadavg(), "chunks": r.manifest["chunks"],
                  "chunk_cells": r.manifest["identity"]["chunk_cells"], "devices": jax.device_count(),
                  "ru_maxrss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(
    cells: int,
    devices: int,
    budget: float,
    warm_chunk: int = 0,
    study: str = "reram_pulse_read",
    options: dict | None = None,
) -> dict:
    """One Monte Carlo run in a fresh process; its peak RSS sampled with psutil. With ``warm_chunk`` the chunk
    size is fixed and the timed run follows a warm-up of one chunk (compilation excluded)."""
    import psutil

    options = OPTIONS if options is None else options
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(CARD),
                str(cells),
                str(devices),
                str(Path(tmp) / "run"),
                str(budget),
                json.dumps(options),
                str(warm_chunk),
                study,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ps, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, ps.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"Monte Carlo child ({cells} cells) failed:\n{err[-2000:]}")
        res = json.loads(out.strip().splitlines()[-1])
        res["peak_rss_MB"] = max(peak / 2**20, res["ru_maxrss_MB"])
        res["cells"] = cells
        return res


def best_of(f, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``f`` (which blocks until its result is ready)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def in_process(quick: bool) -> dict:
    """Compile times, workload vs fused-kernel throughput, and gradient cost, on one device."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import imcphys
    import imcphys.montecarlo  # noqa: F401

    mc = sys.modules["imcphys.montecarlo"]  # the module (imcphys.montecarlo is also the function's name)
    from imcphys.constants import K_B, K_B_EV, Q
    from imcphys.population import cell_keys, pulse_keys, sample_cells

    study = mc.get_study("reram_pulse_read", card=CARD, **OPTIONS)
    key = jax.random.key(0)
    n = 20_000 if quick else 200_000
    cells = jnp.arange(n)
    kernel = mc._chunk_function(study, key)  # the study's jitted chunk kernel, without files or progress

    t0 = time.perf_counter()
    compiled_fwd = kernel.lower(cells, np.int64(n)).compile()
    compile_forward = time.perf_counter() - t0

    def study_kernel():
        jax.block_until_ready(compiled_fwd(cells, np.int64(n)))

    # the full runner (sampling, checks, netCDF chunk files, progress machinery) in 4 chunks, kernel compiled
    tmp_runs = tempfile.TemporaryDirectory()
    mc.montecarlo(study, cells=n, key=key, out=Path(tmp_runs.name) / "warm", chunk_cells=n // 4, progress=False)

    def runner():
        mc.montecarlo(
            study,
            cells=n,
            key=key,
            out=Path(tmp_runs.name) / f"r{time.perf_counter_ns()}",
            chunk_cells=n // 4,
            progress=False,
        )

    # ---- the ceiling: one fused elementwise kernel of the same arithmetic on plain arrays (no modules, no vmap,
    # no per-cell keys: one batched normal draw per step), the same 2 pulses × 16 Heun steps with projection
    dev = study.device
    p = {k: float(v) for k, v in imcphys.parameters(dev).items()}
    steps = OPTIONS["fixed_steps"]
    width = 100e-9
    hs = jnp.asarray(np.diff(width * (np.arange(steps + 1) / steps) ** 1.5))  # imcphys's graded pulse mesh

    def ceiling(ea, g0, tox, gam0, k):
        def current(g, v):
            return p["i0"] * jnp.exp(-g / g0) * jnp.sinh(v / p["v0"])

        def rate(g, v, gam_nom):
            g = jnp.clip(g, p["gap_min"], p["gap_max"])
            temp = p["ambient_temperature"] + jnp.abs(v * current(g, v)) * p["thermal_resistance"]
            gamma = gam_nom - p["beta"] * (g / 1e-9) ** 3
            x = jnp.clip((gamma * abs(v) / tox - p["min_field"]) / p["field_threshold_width"], 0.0, 1.0)
            on = x * x * (3.0 - 2.0 * x)
            r = (
                -p["gap_velocity"]
                * jnp.exp(-ea / (K_B_EV * temp))
                * jnp.sinh(gamma * p["atom_spacing"] / tox * v / (K_B * temp / Q))
            )
            sigma = (
                p["gap_noise"]
                * math.sqrt(p["noise_time_step"])
                * on
                / (1.0 + jnp.exp((p["noise_t_crit"] - temp) / p["noise_t_smooth"]))
            )
            return r * on, sigma

        def pulse(g, v, gam_nom, kp):
            def step(i, carry):
                g, kk = carry
                kk, sub = jr.split(kk)
                h = hs[i]
                k1, _ = rate(g, v, gam_nom)
                g1 = jnp.clip(g + h * k1, p["gap_min"], p["gap_max"])
                k2, _ = rate(g1, v, gam_nom)
                g = jnp.clip(g + 0.5 * h * (k1 + k2), p["gap_min"], p["gap_max"])
                _, sigma = rate(g, v, gam_nom)
                g = jnp.clip(g + sigma * jr.normal(sub, g.shape) * jnp.sqrt(h), p["gap_min"], p["gap_max"])
                return g, kk

            return jax.lax.fori_loop(0, steps, step, (g, kp))[0]

        ks, kr = jr.split(k)
        g_set = pulse(jnp.full(ea.shape, p["gap_max"]), 1.8, gam0, ks)
        g_reset = pulse(g_set, -1.3, p["gamma0_reset"], kr)
        return current(g_set, p["read_voltage"]) / p["read_voltage"], current(g_reset, p["read_voltage"]) / p[
            "read_voltage"
        ]

    rng = np.random.default_rng(0)
    args = (
        jnp.asarray(p["activation_energy"] + 0.02 * rng.standard_normal(n)),
        jnp.asarray(p["gap_decay_length"] * np.exp(0.04 * rng.standard_normal(n))),
        jnp.asarray(p["oxide_thickness"] * (1 + 0.03 * rng.standard_normal(n))),
        jnp.asarray(p["gamma0"] * (1 + 0.02 * rng.standard_normal(n))),
        jax.random.key(1),
    )
    ceil_jit = jax.jit(ceiling)
    jax.block_until_ready(ceil_jit(*args))

    # the three timed in interleaved rounds (a load that comes and goes hits them alike), best of the rounds;
    # process CPU time too (robust to other processes; the runner's includes its writer thread)
    timings = {
        "fused_ceiling": lambda: jax.block_until_ready(ceil_jit(*args)),
        "study_kernel": study_kernel,
        "montecarlo_runner": runner,
    }
    wall = {k: float("inf") for k in timings}
    cpu = dict(wall)
    for _ in range(5):
        for name, f in timings.items():
            w, c = time.perf_counter(), time.process_time()
            f()
            wall[name] = min(wall[name], time.perf_counter() - w)
            cpu[name] = min(cpu[name], time.process_time() - c)
    tmp_runs.cleanup()
    ceiling_s, study_s, runner_s = wall["fused_ceiling"], wall["study_kernel"], wall["montecarlo_runner"]

    # ---- gradient of the population's mean log read conductance after SET w.r.t. nominal parameters and pulse
    n_grad = 5_000 if quick else 20_000
    gcells = jnp.arange(n_grad)

    def mean_log_g(theta):
        d = imcphys.replace(dev, activation_energy=theta[0], gamma0=theta[1])
        pop = sample_cells(d, study.specs, gcells, key=mc.population_key(key))
        keys = pulse_keys(cell_keys(mc.noise_key(key), gcells), 1)[:, 0]
        g = eqx.filter_vmap(lambda c, k: imcphys.apply_pulse(c, c.gap_max, theta[2], width, fixed_steps=steps, key=k))(
            pop, keys
        )
        return jnp.mean(jnp.log(jax.vmap(lambda c, gg: c.read(gg))(pop, g)))

    theta = jnp.asarray([p["activation_energy"], p["gamma0"], 1.8])
    fwd = jax.jit(mean_log_g)
    t0 = time.perf_counter()
    jax.block_until_ready(fwd(theta))
    compile_small = time.perf_counter() - t0
    vg = jax.jit(jax.value_and_grad(mean_log_g))
    t0 = time.perf_counter()
    jax.block_until_ready(vg(theta))
    compile_grad = time.perf_counter() - t0
    fwd_s = best_of(lambda: jax.block_until_ready(fwd(theta)), 3)
    grad_s = best_of(lambda: jax.block_until_ready(vg(theta)), 3)

    return {
        "cells": n,
        "compile_s": {
            "study_chunk_kernel": compile_forward,
            "set_pulse_forward": compile_small - fwd_s,
            "set_pulse_value_and_grad": compile_grad - grad_s,
        },
        "throughput_cells_per_s": {
            "fused_ceiling": n / ceiling_s,
            "study_kernel": n / study_s,
            "montecarlo_runner": n / runner_s,
        },
        "fraction_of_ceiling": {"study_kernel": ceiling_s / study_s, "montecarlo_runner": ceiling_s / runner_s},
        "fraction_of_ceiling_cpu_time": {
            "study_kernel": cpu["fused_ceiling"] / cpu["study_kernel"],
            "montecarlo_runner": cpu["fused_ceiling"] / cpu["montecarlo_runner"],
        },
        "runner_chunks": 4,
        "loadavg_in_process": os.getloadavg(),
        "gradient": {
            "cells": n_grad,
            "forward_s": fwd_s,
            "value_and_grad_s": grad_s,
            "ratio": grad_s / fwd_s,
            "wrt": ["activation_energy (nominal)", "gamma0 (nominal)", "SET amplitude"],
        },
    }


#: The performance bar of the program-and-verify Monte Carlo: 1e7 cells of one ReRAM program-and-verify (up to 20
#: verify iterations) on the CPU's cores with peak memory under 4 GB.
WRITE_VERIFY = {"iterations": 20, "fixed_steps": 8}
WRITE_VERIFY_BUDGET = 1e9  # bytes of chunks in flight


def write_verify(cells: int, devices: int) -> dict:
    """The ``reram_write_verify`` study over ``cells`` cells on ``devices`` CPU devices, in a fresh process (time
    including compilation, peak RSS)."""
    res = run_child(cells, devices, WRITE_VERIFY_BUDGET, study="reram_write_verify", options=WRITE_VERIFY)
    res["cells_per_s"] = cells / res["seconds"]
    return res


WV_ROW = "ReRAM program-and-verify Monte Carlo"


def wv_row(wv: dict, cores: int) -> dict:
    """The README row of a ``write_verify`` result."""
    load = wv.get("loadavg")
    return {
        "workload": f"{WV_ROW}, {wv['cells']:.0e} cells (≤ {WRITE_VERIFY['iterations']} verify iterations, "
        f"8 levels, {WRITE_VERIFY['fixed_steps']} Heun steps per pulse)",
        "imcphys": f"{wv['seconds']:.0f} s ({wv['cells_per_s']:.3g} cells/s), peak RSS {wv['peak_rss_MB']:.0f} MB",
        "baseline": None,
        "ratio": None,
        "ceiling_fraction": None,
        "note": f"{cores} CPU device(s), {wv['chunks']} chunk(s) of {wv['chunk_cells']}, compilation included"
        + (f"; load average {load[0]:.1f} at the end" if load else "")
        + "; bar: < 4 GB",
    }


def _compile_log(stderr: str) -> dict:
    """Seconds of XLA compilation (cache loads included) and of tracing + lowering, from JAX_LOG_COMPILES=1 logs."""
    import re

    def total(pattern: str) -> float:
        return sum(float(x) for x in re.findall(pattern + r".* in ([0-9.eE+-]+) sec", stderr))

    return {
        "xla_compile_s": total(r"Finished XLA compilation of"),
        "trace_and_lower_s": total(r"Finished tracing \+ transforming") + total(r"Finished jaxpr to MLIR"),
        "cache_hits": stderr.count("Persistent compilation cache hit"),
        "chunk_kernel_from_cache": "Persistent compilation cache hit for 'jit_imcphys_chunk'" in stderr,
    }


def compilation_cache(quick: bool) -> dict:
    """A quick ``imcphys mc`` (1e4 cells) as a separate process, twice, with one fresh compilation cache: cold (it
    compiles and stores) and warm (it loads). Goal: the warm run's XLA compile share under 1 s."""
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "IMCPHYS_COMPILATION_CACHE": str(Path(tmp) / "cache"), "JAX_LOG_COMPILES": "1"}
        for name in ("cold", "warm"):
            args = [sys.executable, "-m", "imcphys.cli", "mc", "--card", str(CARD), "--study", "reram_pulse_read"]
            args += ["--cells", "10000", "--out", str(Path(tmp) / name), "--no-progress"]
            args += [f"--set=temperatures={OPTIONS['temperatures']}", f"--set=fixed_steps={OPTIONS['fixed_steps']}"]
            t0 = time.perf_counter()
            proc = subprocess.run(args, env=env, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-3000:])
            runs[name] = {"wall_s": time.perf_counter() - t0, **_compile_log(proc.stderr)}
    return {**runs, "loadavg": os.getloadavg(), "goal_warm_compile_below_1s": runs["warm"]["xla_compile_s"] < 1.0}


DASK_CHILD = """
import json, os, sys, time
import jax
jax.config.update("jax_enable_x64", True)
if sys.argv[5] != "dask":  # every core on both sides: one JAX CPU device computes on one core
    jax.config.update("jax_num_cpu_devices", os.cpu_count())
from imcphys.montecarlo import get_study, montecarlo
study = get_study("reram_pulse_read", card=sys.argv[1], **json.loads(sys.argv[4]))
client = cluster = None
t0 = time.perf_counter()
if sys.argv[5] == "dask":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
t1 = time.perf_counter()
montecarlo(study, cells=int(sys.argv[2]), key=jax.random.key(0), out=sys.argv[3], chunk_cells=int(sys.argv[6]),
           progress=False, client=client)
t2 = time.perf_counter()
print(json.dumps({"startup_s": t1 - t0, "run_s": t2 - t1, "devices": jax.device_count()}))
if client is not None:
    client.close(); cluster.close()
"""


def dask_vs_in_process(cells: int) -> dict:
    """``cells`` cells in chunks of ``cells / 20``: one process (one JAX CPU device per core) against a Dask
    LocalCluster of 2 single-threaded worker processes (one JAX CPU device each); each in a fresh process without the
    compilation cache, so both times include compiling the chunk kernel (and, for Dask, the workers importing JAX).
    No goal on a 2-core machine: a report."""
    res = {"cells": cells, "chunk_cells": cells // 20}
    for engine in ("in_process", "dask_local_2"):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "IMCPHYS_COMPILATION_CACHE": "off"}
            args = [sys.executable, "-c", DASK_CHILD, str(CARD), str(cells), str(Path(tmp) / "run")]
            args += [json.dumps(OPTIONS), "dask" if engine.startswith("dask") else "here", str(cells // 20)]
            proc = subprocess.run(args, env=env, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-3000:])
            res[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
    res["loadavg"] = os.getloadavg()
    return res


def cluster_rows(cache: dict, dask: dict) -> list[dict]:
    cold, warm = cache["cold"], cache["warm"]
    here, there = dask["in_process"], dask["dask_local_2"]
    return [
        {
            "workload": "Persistent compilation: imcphys mc, 1e4 cells, cold vs warm cache (separate processes)",
            "imcphys": f"warm {warm['wall_s']:.1f} s, of which XLA compile {warm['xla_compile_s']:.2f} s",
            "baseline": f"cold {cold['wall_s']:.1f} s, of which XLA compile {cold['xla_compile_s']:.2f} s",
            "ratio": cold["wall_s"] / warm["wall_s"],
            "ceiling_fraction": None,
            "note": f"chunk kernel loaded from the cache: {warm['chunk_kernel_from_cache']}; goal warm compile < 1 s: "
            f"{'met' if cache['goal_warm_compile_below_1s'] else 'not met'}; tracing still "
            f"{warm['trace_and_lower_s']:.1f} s; load average {cache['loadavg'][0]:.1f}",
        },
        {
            "workload": f"Monte Carlo on Dask: LocalCluster(2 workers) vs in-process, {dask['cells']:.0e} cells",
            "imcphys": f"{there['run_s']:.1f} s (+ {there['startup_s']:.1f} s cluster start)",
            "baseline": f"{here['run_s']:.1f} s in one process ({here['devices']} device(s))",
            "ratio": here["run_s"] / there["run_s"],
            "ceiling_fraction": None,
            "note": f"chunks of {dask['chunk_cells']}, compilation included; no goal on 2 cores; load average "
            f"{dask['loadavg'][0]:.1f}",
        },
    ]


CLUSTER_ROWS = ("Persistent compilation", "Monte Carlo on Dask")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="small sizes: check that it works")
    ap.add_argument(
        "--write-verify-only",
        action="store_true",
        help="only the 1e7-cell program-and-verify row (1e4 cells with --quick)",
    )
    ap.add_argument("--write-verify-cells", type=int, default=None, help="cells of that row (default 1e7)")
    ap.add_argument(
        "--cluster-only", action="store_true", help="only the compilation-cache and Dask rows (1e5 cells with --quick)"
    )
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    wv_cells = a.write_verify_cells or (10_000 if a.quick else 10_000_000)
    if a.write_verify_only:
        wv = write_verify(wv_cells, cores)
        (a.out / "montecarlo_write_verify.json").write_text(json.dumps(wv, indent=1))
        merged = a.out / "montecarlo.json"
        if merged.exists():  # replace that row of a full (or quick) run in the same directory
            res = json.loads(merged.read_text())
            res["write_verify"] = wv
            res["rows"] = [r for r in res["rows"] if not r["workload"].startswith(WV_ROW)] + [wv_row(wv, cores)]
            merged.write_text(json.dumps(res, indent=1))
        print(json.dumps(wv, indent=1))
        return
    dask_cells = 100_000 if a.quick else 1_000_000
    if a.cluster_only:
        cache, dask = compilation_cache(a.quick), dask_vs_in_process(dask_cells)
        merged = a.out / "montecarlo.json"
        if merged.exists():  # replace those rows of a full (or quick) run in the same directory
            res = json.loads(merged.read_text())
            res["compilation_cache"], res["dask"] = cache, dask
            res["rows"] = [r for r in res["rows"] if not r["workload"].startswith(CLUSTER_ROWS)]
            res["rows"] += cluster_rows(cache, dask)
            merged.write_text(json.dumps(res, indent=1))
        print(json.dumps({"compilation_cache": cache, "dask": dask}, indent=1))
        return
    sizes = [10_000, 100_000] if a.quick else [10_000, 100_000, 1_000_000, 10_000_000]
    t_start = time.perf_counter()

    scaling = [run_child(n, cores, BUDGET) for n in sizes]
    for s in scaling:
        print(
            f"  {s['cells']:>10} cells: {s['seconds']:8.1f} s, peak RSS {s['peak_rss_MB']:7.0f} MB, "
            f"{s['chunks']} chunk(s) of {s['chunk_cells']}",
            flush=True,
        )
    big, small = scaling[-1], scaling[-2]
    # linear time: the marginal cost per cell between the two largest sizes (compile time cancels out)
    marginal = (big["seconds"] - small["seconds"]) / (big["cells"] - small["cells"])

    n_speed = 100_000 if a.quick else 1_000_000
    one, two = (run_child(n_speed, d, BUDGET, warm_chunk=n_speed // 10) for d in (1, 2))
    inproc = in_process(a.quick)
    wv = write_verify(wv_cells, cores)
    cache, dask = compilation_cache(a.quick), dask_vs_in_process(dask_cells)

    res = {
        "name": "montecarlo",
        "quick": a.quick,
        "workload": f"reram_pulse_read: SET +1.8 V then RESET -1.3 V, 100 ns, {OPTIONS['fixed_steps']} Heun steps "
        f"each, 1 temperature, card variability + cycle-to-cycle noise",
        "memory_budget_MB": BUDGET / 1e6,
        "scaling": scaling,
        "marginal_us_per_cell": marginal * 1e6,
        "peak_rss_growth_MB": big["peak_rss_MB"] - scaling[0]["peak_rss_MB"],
        "sharding": {
            "cells": n_speed,
            "one_device_s": one["seconds"],
            "two_devices_s": two["seconds"],
            "speedup": one["seconds"] / two["seconds"],
        },
        **inproc,
        "write_verify": wv,
        "compilation_cache": cache,
        "dask": dask,
        "seconds": time.perf_counter() - t_start,
    }
    frac = res["fraction_of_ceiling"]
    res["rows"] = [
        {
            "workload": f"Monte Carlo scaling {sizes[0]:.0e}–{sizes[-1]:.0e} cells (ReRAM SET+RESET+read)",
            "imcphys": f"{big['seconds']:.1f} s for {big['cells']:.0e} cells, peak RSS {big['peak_rss_MB']:.0f} MB "
            f"(budget {BUDGET / 1e6:.0f} MB)",
            "baseline": f"{scaling[0]['seconds']:.1f} s, {scaling[0]['peak_rss_MB']:.0f} MB at {sizes[0]:.0e} cells",
            "ratio": None,
            "ceiling_fraction": frac["montecarlo_runner"],
            "note": f"{marginal * 1e6:.2f} µs/cell marginal; {cores} CPU device(s)",
        },
        {
            "workload": "Monte Carlo sharding, 2 CPU host devices vs 1",
            "imcphys": f"{two['seconds']:.1f} s",
            "baseline": f"{one['seconds']:.1f} s on 1 device",
            "ratio": res["sharding"]["speedup"],
            "ceiling_fraction": None,
            "note": f"{n_speed:.0e} cells, compilation excluded",
        },
        {
            "workload": "Gradient of a population mean (3 parameters) vs forward",
            "imcphys": f"{res['gradient']['value_and_grad_s']:.2f} s",
            "baseline": f"{res['gradient']['forward_s']:.2f} s forward",
            "ratio": res["gradient"]["ratio"],
            "ceiling_fraction": None,
            "note": f"{res['gradient']['cells']} cells; compile {res['compile_s']['set_pulse_value_and_grad']:.1f} s",
        },
        wv_row(wv, cores),
        {
            "workload": "Compile time of the study's chunk kernel",
            "imcphys": f"{res['compile_s']['study_chunk_kernel']:.1f} s",
            "baseline": None,
            "ratio": None,
            "ceiling_fraction": frac["study_kernel"],
            "note": "once per device and chunk shape",
        },
        *cluster_rows(cache, dask),
    ]
    (a.out / "montecarlo.json").write_text(json.dumps(res, indent=1))
    print(
        json.dumps(
            {
                k: res[k]
                for k in (
                    "marginal_us_per_cell",
                    "peak_rss_growth_MB",
                    "sharding",
                    "fraction_of_ceiling",
                    "gradient",
                    "compile_s",
                )
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
