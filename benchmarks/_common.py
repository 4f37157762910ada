"""Shared helpers for benchmark scripts: host-device setup, timing, JSON output.

Import this module *before* jax: it sets ``--xla_force_host_platform_device_count`` so that JAX uses every CPU core
(one JAX CPU device runs elementwise work on one core).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

N_CORES = os.cpu_count() or 1
if "jax" not in sys.modules:
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={N_CORES}")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

jax.config.update("jax_enable_x64", True)


def cell_sharding() -> NamedSharding:
    """Shard a leading cell axis over every JAX device."""
    return NamedSharding(Mesh(np.array(jax.devices()), ("cells",)), PartitionSpec("cells"))


def shard(x: Any) -> Any:
    """Place the leading axis of every array in ``x`` across all devices."""
    return jax.device_put(x, cell_sharding())


def timed(f, *args, repeat: int = 3) -> tuple[float, Any]:
    """Best wall time [s] of ``f(*args)`` over ``repeat`` runs (after one warm-up call), and its result."""
    out = jax.block_until_ready(f(*args))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best, out


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "machine": platform.machine(),
        "cpu_cores": N_CORES,
        "jax_devices": len(jax.devices()),
        "dtype": "float64",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write(out: Path, name: str, result: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "environment": environment(), **result}, indent=2))
    print(f"wrote {path}")
    return path


def cli(main, doc: str | None) -> None:
    """Command line of a benchmark script whose ``main(out, quick)`` takes only ``--out DIR`` and ``--quick``."""
    import argparse

    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--out", type=Path, default=Path("benchmarks"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    main(args.out, args.quick)
