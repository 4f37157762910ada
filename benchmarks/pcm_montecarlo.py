"""PCM Monte Carlo throughput: program + drift + read of 1e6 and 1e7 devices at four read times.

imcphys (PCMStatistical, float32, the cell axis sharded over one JAX CPU device per core) against aihwkit's
``PCMLikeNoiseModel`` (torch, float32, one thread per core) on the same targets, statistics compared.

    python benchmarks/pcm_montecarlo.py --out benchmarks [--quick]

Both sides do the same work per device: one programming-noise draw, one ν draw, and at each read time the
drift and one read-noise draw (aihwkit: apply_programming_noise_to_conductance, generate_drift_coefficients,
then apply_drift_noise_to_conductance per read time). Targets are drawn from one seed, noise from another.
aihwkit is an optional extra (``pip install aihwkit==1.1.0 torch==2.13.0``): without it that column is skipped
and the JSON says why. Float32 on both sides (torch's default), so this script does not use ``_common`` (which
switches JAX to float64). Writes ``<out>/pcm_montecarlo.json`` with README rows for ``run_all.py``.
"""

from __future__ import annotations

import os

N_CORES = os.cpu_count() or 1
# One JAX CPU device per core, before jax is imported: JAX runs elementwise work on one core per device.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={N_CORES}"
).strip()

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import imcphys  # noqa: E402
from imcphys import _random  # noqa: E402

READ_TIMES = (1.0, 3600.0, 86400.0, 365.25 * 86400.0)  # 1 s, 1 h, 1 day, 1 year after programming
LEVELS_US = np.linspace(0.0, 25.0, 8)  # target conductances [µS]
SEED_TARGETS, SEED_NOISE = 1, 2


def targets(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Level index and target conductance [µS] of n devices (float32), from their own seed."""
    level = np.random.default_rng(SEED_TARGETS).integers(0, LEVELS_US.size, n)
    return level, LEVELS_US[level].astype(np.float32)


def timed(fn, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs of ``fn()`` (after one warm-up run) and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ------------------------------------------------------------------------------------------------- imcphys
# Each side is two jitted calls, as a user runs it: program once, then read at the four times. One fused call is
# slower on CPU: XLA fuses the programming noise into the (time, device) read loop and recomputes it per read.
def imcphys_program_and_read(model: imcphys.PCMStatistical):
    times = jnp.asarray(READ_TIMES, dtype=jnp.float32)[:, None]  # broadcasts: 4 reads of every device

    def program(g_target, key):
        return model.program(g_target, key=jr.fold_in(key, 0))

    def read(state, key):
        return state.nu, model.conductance(state, times, jr.fold_in(key, 1))

    return program, read


def fused_ceiling(model: imcphys.PCMStatistical):
    """The same arithmetic and draws written as two flat functions (no modules, no input checks): the practical
    ceiling of this workload in JAX."""
    c = [float(v) for v in model.prog_coeffs]
    g_max, g_ref, t0, t_read = (float(v) for v in (model.g_max, model.prog_g_max_reference, model.t0, model.t_read))
    times = jnp.asarray(READ_TIMES, dtype=jnp.float32)[:, None]

    def program(g, key):
        z_prog, z_nu = _random.normals(jr.fold_in(key, 0), g.shape, 2, jnp.float32)
        x = g / g_max
        g_prog = jnp.maximum(g + (c[0] + c[1] * x + c[2] * x * x) * (g_max / g_ref) * z_prog, 0.0)
        ln_x = jnp.log(jnp.maximum(x, 1e-7))
        mu = jnp.clip(-0.0155 * ln_x + 0.0244, 0.049, 0.1)
        sd = jnp.clip(-0.0125 * ln_x - 0.0059, 0.008, 0.045)
        return g_prog, jnp.abs(mu + sd * z_nu)

    def read(state, key):
        g_prog, nu = state
        (z_read,) = _random.normals(jr.fold_in(key, 1), (len(READ_TIMES), *g_prog.shape), 1, jnp.float32)
        q_s = jnp.minimum(0.0088 / jnp.maximum(jnp.exp(0.65 * jnp.log(g_prog / g_max)), 1e-3), 0.2)
        g_drift = g_prog * jnp.exp(-nu * jnp.log1p(times / t0))
        sigma_n = q_s * jnp.sqrt(jnp.log((times + t0 + t_read) / (2 * t_read)))
        return nu, jnp.maximum(g_drift + jnp.abs(g_drift) * sigma_n * z_read, 0.0)

    return program, read


def jax_runner(fns, g_us: np.ndarray, devices: list):
    mesh = jax.sharding.Mesh(np.array(devices), ("cells",))
    sharding = NamedSharding(mesh, PartitionSpec("cells"))
    g = jax.device_put(jnp.asarray(g_us * 1e-6, dtype=jnp.float32), sharding)
    program, read = (jax.jit(f) for f in fns)
    key = jr.key(SEED_NOISE)
    return lambda: jax.block_until_ready(read(program(g, key), key))


def rng_only(n: int, repeats: int) -> dict:
    """Time of n float32 standard normals: the fused Threefry of imcphys vs jax.random.normal (one device)."""
    fused = jax.jit(lambda k: _random.normals(k, (n,), 1, jnp.float32)[0])
    plain = jax.jit(lambda k: jr.normal(k, (n,), jnp.float32))
    t_fused, _ = timed(lambda: fused(jr.key(0)).block_until_ready(), repeats)
    t_plain, _ = timed(lambda: plain(jr.key(0)).block_until_ready(), repeats)
    return {"normals": n, "imcphys_fused_threefry_s": t_fused, "jax_random_normal_s": t_plain}


# ------------------------------------------------------------------------------------------------- aihwkit
def aihwkit_runner(g_us: np.ndarray):
    import torch
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

    torch.set_num_threads(N_CORES)
    model = PCMLikeNoiseModel(g_max=25.0)
    g = torch.from_numpy(g_us)

    def call():
        torch.manual_seed(SEED_NOISE)
        g_prog = model.apply_programming_noise_to_conductance(g)
        nu = model.generate_drift_coefficients(g)
        reads = [model.apply_drift_noise_to_conductance(g_prog, nu, t) for t in READ_TIMES]
        return nu.numpy(), np.stack([r.numpy() for r in reads])

    return call


# ---------------------------------------------------------------------------------------------- statistics
def per_level(level: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Per-level count, mean, std and kurtosis (non-excess) of ``values`` (float64 accumulation)."""
    k = LEVELS_US.size
    v = values.astype(np.float64)
    n = np.bincount(level, minlength=k).astype(np.float64)
    mean = np.bincount(level, v, k) / n
    d = v - mean[level]
    var = np.bincount(level, d * d, k) / n
    m4 = np.bincount(level, d**4, k) / n
    return {"n": n, "mean": mean, "std": np.sqrt(var), "kurtosis": m4 / np.maximum(var, 1e-300) ** 2}


def compare(a: dict, b: dict) -> dict:
    """z-scores of the differences of per-level means and stds between two independent Monte Carlo runs."""
    se_mean = np.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    se_std = np.sqrt(
        a["std"] ** 2 * (a["kurtosis"] - 1) / (4 * a["n"]) + b["std"] ** 2 * (b["kurtosis"] - 1) / (4 * b["n"])
    )
    z_mean = np.where(se_mean > 0, (a["mean"] - b["mean"]) / np.where(se_mean > 0, se_mean, 1), 0.0)
    z_std = np.where(se_std > 0, (a["std"] - b["std"]) / np.where(se_std > 0, se_std, 1), 0.0)
    return {"z_mean": z_mean.tolist(), "z_std": z_std.tolist()}


def statistics(level, nu, reads) -> dict:
    """Per-level statistics of ν and of the conductance [µS] at each read time."""
    out = {"nu": per_level(level, nu)}
    out.update({f"g_{t:g}s_uS": per_level(level, r) for t, r in zip(READ_TIMES, reads, strict=True)})
    return out


def summary(stats: dict) -> dict:
    return {name: {"mean": s["mean"].tolist(), "std": s["std"].tolist()} for name, s in stats.items()}


# ------------------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--quick", action="store_true", help="1e5 and 1e6 devices, fewer repeats")
    args = parser.parse_args()
    sizes = (100_000, 1_000_000) if args.quick else (1_000_000, 10_000_000)
    repeats = 2 if args.quick else 3
    try:
        import aihwkit
        import torch

        aihwkit_skip, versions = None, {"aihwkit": aihwkit.__version__, "torch": torch.__version__}
    except ImportError as err:
        aihwkit_skip = f"aihwkit/torch not installed ({err}); pip install aihwkit==1.1.0 torch==2.13.0"
        versions = {}

    model = imcphys.PCMStatistical()
    devices = jax.devices()
    result: dict = {
        "benchmark": "pcm_montecarlo",
        "description": "PCMStatistical (Joshi 2020) program + drift + read at 4 read times, float32; aihwkit "
        "PCMLikeNoiseModel side by side on the same targets",
        "read_times_s": list(READ_TIMES),
        "levels_uS": LEVELS_US.tolist(),
        "dtype": "float32",
        "environment": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            **versions,
            "cpu_cores": N_CORES,
            "jax_devices": len(devices),
            "torch_threads": N_CORES,
            "load_average_start": list(os.getloadavg()),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "aihwkit_skipped": aihwkit_skip,
        "sizes": {},
    }
    for n in sizes:
        level, g_us = targets(n)
        entry: dict = {"devices": n}
        runs = (
            ("imcphys", imcphys_program_and_read(model), devices),
            ("imcphys_1dev", imcphys_program_and_read(model), devices[:1]),
            ("ceiling", fused_ceiling(model), devices),
        )
        for name, fn, devs in runs:
            t, out = timed(jax_runner(fn, g_us, devs), repeats)
            entry[f"{name}_s"] = t
            if name == "imcphys":
                nu, reads = out
        entry["imcphys_devices_per_s"] = n / entry["imcphys_s"]
        entry["fraction_of_ceiling"] = entry["ceiling_s"] / entry["imcphys_s"]
        ours = statistics(level, np.asarray(nu), np.asarray(reads) * 1e6)
        entry["imcphys_stats"] = summary(ours)
        if aihwkit_skip is None:
            t, (nu_a, reads_a) = timed(aihwkit_runner(g_us), repeats)
            entry["aihwkit_s"] = t
            entry["aihwkit_devices_per_s"] = n / t
            entry["speedup_vs_aihwkit"] = entry["aihwkit_s"] / entry["imcphys_s"]
            theirs = statistics(level, nu_a, reads_a)
            entry["aihwkit_stats"] = summary(theirs)
            z = {name: compare(ours[name], theirs[name]) for name in ours}
            all_z = np.abs(np.concatenate([np.r_[v["z_mean"], v["z_std"]] for v in z.values()]))
            entry["stats_comparison"] = {
                "z_scores": z,
                "max_abs_z": float(all_z.max()),
                "n_compared": int(all_z.size),
                "n_abs_z_above_3": int(np.sum(all_z > 3)),
            }
        result["sizes"][str(n)] = entry
        line = (
            f"{n:>9} devices: imcphys {entry['imcphys_s']:.3f} s ({len(devices)} dev), "
            f"{entry['imcphys_1dev_s']:.3f} s (1 dev), fused ceiling {entry['ceiling_s']:.3f} s"
        )
        if aihwkit_skip is None:
            line += (
                f", aihwkit {entry['aihwkit_s']:.3f} s -> {entry['speedup_vs_aihwkit']:.2f}x; "
                f"stats max |z| {entry['stats_comparison']['max_abs_z']:.2f}"
            )
        print(line, flush=True)

    big = result["sizes"][str(sizes[-1])]
    result["rows"] = [
        {
            "workload": f"PCM statistical model: program + drift + read at 4 times, {n:.0e} devices (float32)",
            "imcphys": f"{e['imcphys_devices_per_s']:.3g} devices/s ({e['imcphys_s']:.3g} s)",
            "baseline": None if aihwkit_skip else f"aihwkit 1.1.0 PCMLikeNoiseModel {e['aihwkit_s']:.3g} s",
            "ratio": None if aihwkit_skip else e["speedup_vs_aihwkit"],
            "ceiling_fraction": e["fraction_of_ceiling"],
            "note": (
                f"aihwkit skipped: {aihwkit_skip}"
                if aihwkit_skip
                else f"same statistics: max |z| {e['stats_comparison']['max_abs_z']:.1f} over "
                f"{e['stats_comparison']['n_compared']} per-level means/stds"
            ),
        }
        for n, e in ((int(k), v) for k, v in result["sizes"].items())
    ]
    result["rng_only"] = rng_only(sizes[-1], repeats)
    if aihwkit_skip is None:
        result["bars"] = {
            ">= 2x aihwkit at the largest size": big["speedup_vs_aihwkit"] >= 2.0,
            "statistics within Monte Carlo error (all |z| < 4)": big["stats_comparison"]["max_abs_z"] < 4.0,
        }
    result["environment"]["load_average_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "pcm_montecarlo.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
