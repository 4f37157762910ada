"""JAX's persistent compilation cache, turned on by entry points: compiled kernels kept on disk, so that a new
process (the next CLI call, a restarted notebook, another Dask worker) loads a kernel instead of compiling it.

JAX stores an executable only if it holds no host callback; the hot kernels (Monte Carlo chunks, fits,
program-and-verify) are compiled through :func:`imcphys._checks.checked_jit` for that reason. A cached executable
is the one a fresh compilation gives, so results are the same bits with and without the cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

#: Environment variable: a directory for the cache, or ``off`` (also ``0``, ``false``, ``no``) to opt out.
ENV = "IMCPHYS_COMPILATION_CACHE"
_OFF = {"off", "0", "false", "no", "none"}


def default_cache_dir() -> Path | None:
    """``$IMCPHYS_COMPILATION_CACHE`` if set (None if it says ``off``), else ``$XDG_CACHE_HOME/imcphys/jax``
    (``~/.cache/imcphys/jax``): one cache per user."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "imcphys" / "jax"


def enable_compilation_cache(
    path: str | Path | None = None, *, max_size: float = 2e9, min_compile_time: float = 0.0
) -> Path | None:
    """Keep compiled kernels in ``path`` (default: :func:`default_cache_dir`) for later processes; return the
    directory, or None when ``IMCPHYS_COMPILATION_CACHE=off`` opts out (and ``path`` is not given).

    The directory holds at most ``max_size`` bytes (least recently used entries go first; JAX then locks it with
    a file lock, so that processes sharing it never read a half-written entry). Kernels that compile in less than
    ``min_compile_time`` [s] are not stored: by default every kernel is, since the many small ones (eager
    operations, key folding) add up to seconds per process. Call it once, before the first compilation, at an entry
    point (the CLI and the notebooks do): like float64, it is a process-wide JAX setting that the library itself
    never changes.
    """
    if path is None:
        path = default_cache_dir()
        if path is None:
            return None
    if not (isinstance(max_size, (int, float)) and max_size > 0):
        raise ValueError(f"max_size must be a positive number of bytes; got {max_size!r}")
    if not (isinstance(min_compile_time, (int, float)) and min_compile_time >= 0):
        raise ValueError(f"min_compile_time must be a number of seconds >= 0; got {min_compile_time!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time))
    jax.config.update("jax_compilation_cache_max_size", int(max_size))
    return path
