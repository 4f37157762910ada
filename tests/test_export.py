"""Export to Verilog-A: the paramset of the official model, evaluated by a Verilog-A compiler, gives imcphys'
currents and state rates; the CLI writes it and refuses bad input with one ``error:`` line.

What is compared: ``imcphys export`` writes a paramset for the official module (sky130_fd_pr_reram__reram_cell or
rram_v_1_0_0). The test parses its ``.NAME = VALUE;`` lines, checks that every name is a parameter of a Verilog-A
transcription of the published equations under the official parameter names (tests/verilog_a/*.va, written for
this test — the PDK's and Stanford's Verilog-A files are not in the repository and nothing is fetched), compiles that
transcription with verilogae (OpenVAF) and evaluates its current and state rates with the exported values at a grid
of states and voltages. They must equal imcphys' to 1e-4 (relative): the compiler's constants are CODATA 1998
(k/q differs from CODATA 2018 by 1e-6, times activation energies of up to ~60 kT).
"""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO

import imcphys
from imcphys.export import export_card, official_parameters
from imcphys.models import SkyWaterState

verilogae = pytest.importorskip("verilogae")
VA = REPO / "tests" / "verilog_a"


def _paramset(path) -> dict[str, float]:
    text = path.read_text()
    assert re.search(r"^paramset \w+ \w+;$", text, flags=re.M)
    assert "endparamset" in text
    return {k: float(v) for k, v in re.findall(r"^\s*\.(\w+)\s*=\s*([^;]+);", text, flags=re.M)}


def _evaluate(model, name: str, params: dict[str, float], v: np.ndarray, **probes: np.ndarray) -> np.ndarray:
    fn = model.functions[name]
    args = {k: params[k] for k in fn.parameters if k in params}
    args.update({k: probes[k] for k in fn.parameters if k in probes})
    return np.asarray(fn.eval(temperature=300.0, voltages={fn.voltages[0]: v}, **args))


def test_sky130_export_round_trip_through_verilogae(tmp_path):
    card = REPO / "devices" / "reram_sky130.toml"
    params = _paramset(export_card(card, tmp_path / "sky130.vams"))
    model = verilogae.load(str(VA / "sky130_reram_equations.va"))
    assert set(params) <= set(model.modelcard), set(params) - set(model.modelcard)
    assert set(params) == set(official_parameters(imcphys.read_card(card)))
    dev = imcphys.load_card(card)
    tf, v, temp = (
        x.ravel()
        for x in np.meshgrid([3.3e-9, 3.9e-9, 4.4e-9, 4.9e-9], [-2.0, -1.0, -0.3, 0.1, 1.0, 2.4], [300.0, 600.0])
    )
    probes = dict(probe_filament=tf, probe_temperature=temp)
    rhs = dev.rhs(0.0, SkyWaterState(jnp.asarray(tf), jnp.asarray(temp)), jnp.asarray(v))
    np.testing.assert_allclose(_evaluate(model, "current", params, v, **probes), dev.current(tf, v), rtol=1e-4)
    np.testing.assert_allclose(_evaluate(model, "filament_rate", params, v, **probes), rhs.filament, rtol=1e-4)
    np.testing.assert_allclose(_evaluate(model, "temperature_rate", params, v, **probes), rhs.temperature, rtol=1e-4)


def test_stanford_export_round_trip_through_verilogae(tmp_path):
    card = REPO / "devices" / "reram_stanford_v1.toml"
    params = _paramset(export_card(card, tmp_path / "stanford.vams"))
    model = verilogae.load(str(VA / "stanford_rram_equations.va"))
    assert set(params) <= set(model.modelcard), set(params) - set(model.modelcard)
    dev = imcphys.load_card(card)
    gap, v = (x.ravel() for x in np.meshgrid([0.2e-9, 0.7e-9, 1.2e-9, 1.7e-9], [-2.0, -1.3, -0.9, 0.3, 1.5, 1.8]))
    # imcphys ramps the F_min threshold over 0.1 % of F_min, the official model steps: compare outside the ramp
    gamma = np.where(v < 0, 16.0, 16.0) - 0.8 * (gap / 1e-9) ** 3
    excess = gamma * np.abs(v) / 12e-9 - 1.4e9
    outside = (excess < 0) | (excess > float(dev.field_threshold_width))
    assert outside.all()
    np.testing.assert_allclose(_evaluate(model, "current", params, v, probe_gap=gap), dev.current(gap, v), rtol=1e-4)
    rate = _evaluate(model, "gap_rate", params, v, probe_gap=gap)
    np.testing.assert_allclose(rate, dev.gap_rate(gap, v), rtol=1e-4, atol=1e-300)
    assert np.count_nonzero(rate) > 10  # the grid reaches both sides of the field threshold


def test_export_refuses_what_the_official_model_cannot_express(tmp_path):
    card = imcphys.read_card(REPO / "devices" / "reram_stanford_v1.toml")
    card.parameters["gamma0_reset"] = np.asarray(15.0)
    with pytest.raises(ValueError, match="gamma0_reset = 15 cannot be exported: rram_v_1_0_0 fixes"):
        export_card(card, tmp_path / "x.vams")
    with pytest.raises(ValueError, match="unknown export format 'spice'; known: \\['verilog-a'\\]"):
        export_card(REPO / "devices" / "reram_sky130.toml", tmp_path / "x.vams", fmt="spice")
    with pytest.raises(ValueError, match="no official Verilog-A model for family 'PCMCell'"):
        export_card(REPO / "devices" / "pcm_cell_gst.toml", tmp_path / "x.vams")


def _cli(*args: str):
    from typer.testing import CliRunner

    from imcphys.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_export_writes_the_paramset_and_reports_bad_input(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "cell.vams"
    ok = _cli("export", "--card", "devices/reram_sky130.toml", "--format", "verilog-a", str(out))
    assert ok.exit_code == 0, ok.output
    assert _paramset(out)["Tfilament_ref"] == pytest.approx(4.7249e-9, rel=1e-12)
    assert "// filament_reference, published: Tfilament_ref" in out.read_text()  # provenance as a comment
    for args, message in [
        (["--card", "devices/reram_sky130.toml", "--format", "spectre"], "error: unknown export format 'spectre'"),
        (["--card", "devices/no_such_card.toml"], "error: card not found"),
        (["--card", "devices/reram_sky130_1t1r.toml"], "export the card of the cell in its [parts]"),
    ]:
        bad = _cli("export", *args, str(tmp_path / "bad.vams"))
        assert bad.exit_code == 2
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], bad.stderr
