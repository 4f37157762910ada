"""The crossbar nodal solve against a dense numpy nodal solve, closed forms and finite differences."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import imcphys
from imcphys.crossbar import SinhCell, one_t_one_r, read_cell, solve_crossbar_nodes


def nodal_system(g, v, r_in, r_out, r_driver=0.0, r_sense=0.0):
    """An independently assembled 2MN nodal matrix (one conductance stamp per resistor), its right-hand sides,
    and the row of each output line's last node."""
    m, n = g.shape
    idx_a = lambda i, j: i * n + j  # noqa: E731
    idx_b = lambda i, j: m * n + i * n + j  # noqa: E731
    k = np.zeros((2 * m * n, 2 * m * n))
    f = np.zeros((2 * m * n,) + v.shape[1:])

    def stamp(p, q, c):
        k[p, p] += c
        k[q, q] += c
        k[p, q] -= c
        k[q, p] -= c

    for i in range(m):
        for j in range(n):
            stamp(idx_a(i, j), idx_b(i, j), g[i, j])
            if i + 1 < m:
                stamp(idx_a(i, j), idx_a(i + 1, j), 1.0 / r_in)
            if j + 1 < n:
                stamp(idx_b(i, j), idx_b(i, j + 1), 1.0 / r_out)
    for j in range(n):  # driver + first segment to the ideal source v_j
        k[idx_a(0, j), idx_a(0, j)] += 1.0 / (r_in + r_driver)
        f[idx_a(0, j)] += v[j] / (r_in + r_driver)
    for i in range(m):  # last segment + sense resistance to virtual ground
        k[idx_b(i, n - 1), idx_b(i, n - 1)] += 1.0 / (r_out + r_sense)
    return k, f, [idx_b(i, n - 1) for i in range(m)]


def dense_reference(g, v, r_in, r_out, r_driver=0.0, r_sense=0.0):
    """Output currents [A] of :func:`nodal_system`, solved by numpy."""
    k, f, out = nodal_system(g, v, r_in, r_out, r_driver, r_sense)
    return np.linalg.solve(k, f)[out] / (r_out + r_sense)


@pytest.fixture(scope="module")
def array():
    rng = np.random.default_rng(7)
    g = rng.uniform(1e-6, 100e-6, (6, 9))  # 1–100 µS: a ReRAM/PCM conductance window
    v = rng.uniform(-0.2, 0.2, (9, 4))
    return g, v


@pytest.mark.parametrize("method", ["direct", "cg"])
def test_equals_dense_nodal_solve(array, method):
    g, v = array
    for r_in, r_out, r_drv, r_sns in ((1.0, 1.0, 0.0, 0.0), (2.5, 40.0, 100.0, 50.0), (300.0, 5.0, 0.0, 10.0)):
        ref = dense_reference(g, v, r_in, r_out, r_drv, r_sns)
        out = imcphys.solve_crossbar(g, v, r_in, r_out, r_driver=r_drv, r_sense=r_sns, method=method, rtol=1e-12)
        np.testing.assert_allclose(out, ref, rtol=1e-9)
    out = imcphys.solve_crossbar(g, v[:, 0], 1.0, 1.0, method=method, rtol=1e-12)  # one input vector
    assert out.shape == (6,)
    np.testing.assert_allclose(out, dense_reference(g, v, 1.0, 1.0)[:, 0], rtol=1e-9)


def test_cg_agrees_with_lineax_cg(array):
    """The block CG (every input vector at once) against lineax's CG on the full nodal matrix, one vector at a
    time with a Jacobi preconditioner (crossbar.py explains why the solver does not call lineax.CG itself)."""
    import lineax as lx

    g, v = array
    k, f, out = nodal_system(g, v, 2.0, 3.0)
    op = lx.MatrixLinearOperator(jnp.asarray(k), lx.positive_semidefinite_tag)
    jacobi = lx.TaggedLinearOperator(
        lx.DiagonalLinearOperator(1.0 / jnp.diag(jnp.asarray(k))), lx.positive_semidefinite_tag
    )
    solver = lx.CG(rtol=1e-12, atol=1e-15, max_steps=20_000)  # atol: most right-hand-side entries are 0
    x = jax.vmap(lambda b: lx.linear_solve(op, b, solver, options={"preconditioner": jacobi}).value, 1, 1)(
        jnp.asarray(f)
    )
    ours = imcphys.solve_crossbar(g, v, 2.0, 3.0, method="cg", rtol=1e-12)
    np.testing.assert_allclose(ours, np.asarray(x)[out] / 3.0, rtol=1e-9)


def test_single_line_cosh_ladder():
    """One input line (N = 1) of M cells, each a shunt G to ground through its output line's segment: a discrete
    RC-free ladder with a_i = V cosh(θ(M − ½ − i))/cosh(θ(M + ½)), cosh θ = 1 + r·G_eff/2, where
    G_eff = 1/(1/G + r_out) (transmission-line ladder, e.g. Ramo, Whinnery & Van Duzer, ch. 5, discretised)."""
    m, g, r_in, r_out, v = 40, 50e-6, 2.0, 3.0, 0.3
    g_eff = 1.0 / (1.0 / g + r_out)
    theta = np.arccosh(1.0 + r_in * g_eff / 2.0)
    a = v * np.cosh(theta * (m - 0.5 - np.arange(m))) / np.cosh(theta * (m + 0.5))
    expected = g_eff * a
    out = imcphys.solve_crossbar(np.full((m, 1), g), np.array([v]), r_in, r_out, method="cg", rtol=1e-12)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    # ideal output lines (r_out = 0): the same ladder with G_eff = G
    theta0 = np.arccosh(1.0 + r_in * g / 2.0)
    a0 = v * np.cosh(theta0 * (m - 0.5 - np.arange(m))) / np.cosh(theta0 * (m + 0.5))
    np.testing.assert_allclose(imcphys.solve_crossbar(np.full((m, 1), g), np.array([v]), r_in, 0.0), g * a0, rtol=1e-12)


def test_zero_wire_resistance_is_ideal_mvm(array):
    g, v = array
    gj, vj = jnp.asarray(g), jnp.asarray(v)
    assert np.array_equal(imcphys.solve_crossbar(g, v, 0.0, 0.0), gj @ vj)
    assert np.array_equal(imcphys.solve_crossbar(g, v[:, 0], 0.0, 0.0), gj @ vj[:, 0])
    # the readout's wire path (its G is n_in × n_out, the crossbar's transpose) on two tiles
    x = v.T / 0.2
    ideal = imcphys.readout.analog_mvm(g.T, 0.5 * g.T, x)
    wired = imcphys.readout.analog_mvm(g.T, 0.5 * g.T, x, wires=imcphys.readout.Wires(r_in_wire=0.0, r_out_wire=0.0))
    np.testing.assert_allclose(wired, ideal, rtol=1e-13)
    # the limit from the general solve: IR drop vanishes linearly with r
    err = [np.max(np.abs(imcphys.solve_crossbar(g, v, r, r, method="cg", rtol=1e-12) - g @ v)) for r in (1e-3, 1e-4)]
    assert 9.0 < err[0] / err[1] < 11.0


def test_passive_sneak_path_read_closed_form():
    """Uniform M×N passive array, ideal wires, selected cell read with every other line floating: by symmetry the
    unselected input lines sit at one voltage and the unselected output lines at another, so the sneak path is
    (M−1)G, (M−1)(N−1)G and (N−1)G in series, in parallel with the cell (e.g. Linn et al., Nat. Mater. 9, 403
    (2010), complementary-switch motivation)."""
    m, n, g, v = 6, 9, 20e-6, 0.2
    sneak = 1.0 / (1.0 / ((m - 1) * g) + 1.0 / ((m - 1) * (n - 1) * g) + 1.0 / ((n - 1) * g))
    expected = v * (g + sneak)
    gm = np.full((m, n), g)
    np.testing.assert_allclose(read_cell(gm, 2, 3, v, 0.0, 0.0), expected, rtol=1e-12)
    # tiny wires through the general solve approach it; the 1T1R array (other cells off) has no sneak path
    np.testing.assert_allclose(read_cell(gm, 2, 3, v, 1e-3, 1e-3, method="cg", rtol=1e-12), expected, rtol=1e-6)
    sel = one_t_one_r(gm, selected_outputs=np.arange(m) == 2, selected_inputs=np.arange(n) == 3)
    r_in, r_out = 10.0, 20.0
    # every line held (driven at 0 V but line 3, sensed): (i + 1) input segments, the cell, (N − j) output segments
    series = v / (1.0 / g + 3 * r_in + (n - 3) * r_out)
    out = imcphys.solve_crossbar(sel, v * (np.arange(n) == 3), r_in, r_out, method="cg", rtol=1e-12)
    np.testing.assert_allclose(out, series * (np.arange(m) == 2), rtol=1e-10, atol=1e-20)


def test_gradients_match_finite_differences(array):
    g, v = array
    kw = dict(method="cg", rtol=1e-12)

    def out(g_, v_, r_):
        return imcphys.solve_crossbar(g_, v_, r_, 2.0 * r_, **kw)[2, 1]

    dg, dv, dr = jax.jit(jax.grad(out, argnums=(0, 1, 2)))(jnp.asarray(g), jnp.asarray(v), 30.0)

    def fd(f, x, h):
        return (f(x + h) - f(x - h)) / (2 * h)

    h_g = 1e-4 * g[4, 5]  # the solve's own rounding (~1e-12 relative) must stay small against h
    fd_g = fd(
        lambda x: out(g.copy() + np.eye(6)[4][:, None] * np.eye(9)[5][None, :] * (x - g[4, 5]), v, 30.0), g[4, 5], h_g
    )
    fd_v = fd(lambda x: out(g, v + np.eye(9)[3][:, None] * np.eye(4)[1][None, :] * (x - v[3, 1]), 30.0), v[3, 1], 1e-4)
    fd_r = fd(lambda x: out(g, v, x), 30.0, 1e-3)
    np.testing.assert_allclose(dg[4, 5], fd_g, rtol=1e-6)
    np.testing.assert_allclose(dv[3, 1], fd_v, rtol=1e-6)
    np.testing.assert_allclose(dr, fd_r, rtol=1e-6)
    assert np.all(np.asarray(dv)[:, [0, 2, 3]] == 0)  # input vectors are independent right-hand sides


def test_nonlinear_sinh_cells(array):
    g, v = array
    v = np.abs(v) * 3.0  # up to 0.6 V: sinh(V/V0) far from linear
    cell = SinhCell(v0=0.25)
    sol = solve_crossbar_nodes(g, v, 50.0, 50.0, cell=cell, method="cg", rtol=1e-12)
    assert bool(sol.converged)
    # KCL: the currents of an output line's cells, through the sinh law, add up to its output current
    cells = g[..., None] * 0.25 * np.sinh(np.asarray(sol.cell_voltages) / 0.25)
    np.testing.assert_allclose(cells.sum(axis=1), sol.currents, rtol=1e-9)
    # IR drop lowers cell voltages, and sinh amplifies it: more relative loss than linear cells
    ideal = (g[..., None] * 0.25 * np.sinh(v[None] / 0.25)).sum(axis=1)
    linear = imcphys.solve_crossbar(g, v, 50.0, 50.0, method="cg", rtol=1e-12)
    assert np.all(1 - sol.currents / ideal > 1 - linear / (g @ v))


def test_jit_and_vmap_over_a_population(array):
    g, v = array
    scale = jnp.array([0.5, 1.0, 2.0])
    f = jax.jit(jax.vmap(lambda s, r: imcphys.solve_crossbar(g * s, v, r, r, method="cg", rtol=1e-12), in_axes=(0, 0)))
    r = jnp.array([1.0, 10.0, 0.0])  # the last one takes the ideal-wire branch under vmap
    out = f(scale, r)
    for k in range(3):
        ref = imcphys.solve_crossbar(g * scale[k], v, float(r[k]), float(r[k]), method="cg", rtol=1e-12)
        np.testing.assert_allclose(out[k], ref, rtol=1e-9)
    assert np.array_equal(out[2], jnp.asarray(g * scale[2]) @ jnp.asarray(v))


def test_bad_input_raises(array):
    g, v = array
    with pytest.raises(ValueError, match="r_in_wire must be finite and in"):
        imcphys.solve_crossbar(g, v, -1.0, 1.0)
    with pytest.raises(ValueError, match="v_in must have shape"):
        imcphys.solve_crossbar(g, v[:5], 1.0, 1.0)
    with pytest.raises(ValueError, match="conductance must have shape"):
        imcphys.solve_crossbar(g[0], v, 1.0, 1.0)
    bad = g.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="conductance must be finite"):
        imcphys.solve_crossbar(bad, v, 1.0, 1.0)
    with pytest.raises(ValueError, match="conductance must be finite"):
        imcphys.solve_crossbar(-g, v, 1.0, 1.0)
    with pytest.raises(eqx.EquinoxRuntimeError, match="conductance must be finite and >= 0"):
        eqx.filter_jit(imcphys.solve_crossbar)(bad, v, 1.0, 1.0)
    with pytest.raises(ValueError, match="needs every input line driven"):
        read_cell(g, 0, 0, 0.2, 0.0, 1.0)


def test_non_convergence_is_reported():
    rng = np.random.default_rng(3)
    g, v = rng.uniform(1e-6, 1e-4, (6, 9)), np.full(9, 0.2)
    kw = dict(method="cg", rtol=1e-12, max_iter=1)
    with pytest.raises(ValueError, match="did not converge"):
        imcphys.solve_crossbar(g, v, 1e3, 1e3, **kw)
    sol = solve_crossbar_nodes(g, v, 1e3, 1e3, throw=False, **kw)
    assert not bool(sol.converged) and int(sol.iterations) == 1


@pytest.mark.parametrize("method", ["direct", "cg"])
def test_floating_island_is_reported(method):
    """An undriven input line without cells floats free: the nodal matrix is singular, and both solvers say so
    instead of returning a number."""
    g = np.full((4, 5), 1e-5)
    g[:, 2] = 0.0
    driven = np.array([True, True, False, True, True])
    with pytest.raises(ValueError, match="singular"):
        imcphys.solve_crossbar(g, np.full(5, 0.2), 1.0, 1.0, driven=driven, method=method)
    assert not bool(
        solve_crossbar_nodes(g, np.full(5, 0.2), 1.0, 1.0, driven=driven, method=method, throw=False).converged
    )
