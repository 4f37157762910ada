"""Parameter cards: loading with unit conversion, round trips, and clear errors."""

import jax.numpy as jnp
import numpy as np
import pytest

import imcphys
from imcphys.cards import read_card, save_card


def test_card_converts_units_to_si():
    card = read_card(imcphys.cards_dir() / "reram_stanford_v1.toml")
    assert card.parameters["min_field"] == pytest.approx(1.4e9)  # 1.4 GV/m
    assert card.parameters["thermal_resistance"] == pytest.approx(2.1e3)  # 2.1 kK/W
    assert card.parameters["i0"] == pytest.approx(1e-3)  # 1 mA
    assert card.provenance["min_field"]["status"] == "published"


def test_round_trip_keeps_values_units_and_provenance(tmp_path):
    card = read_card(imcphys.cards_dir() / "reram_stanford_v1.toml")
    dev = imcphys.replace(card.device(), activation_energy=0.75)
    path = save_card(dev, tmp_path / "fitted.toml", template=card, status={"activation_energy": "fitted"})
    again = read_card(path)
    assert again.provenance["oxide_thickness"]["unit"] == "nm"
    assert again.provenance["activation_energy"]["status"] == "fitted"
    for name, value in imcphys.parameters(dev).items():
        np.testing.assert_allclose(getattr(again.device(), name), value, rtol=1e-14, err_msg=name)
    # without a template: SI units, same values
    bare = read_card(save_card(dev, tmp_path / "si.toml"))
    np.testing.assert_allclose(bare.device().oxide_thickness, 12e-9, rtol=1e-14)


@pytest.mark.parametrize(
    "entry, message",
    [
        ('oxide_thickness = { value = 12, unit = "bananas" }', "unknown unit"),
        ('oxide_thickness = { value = 12, unit = "V" }', "cannot be converted"),
        ('oxide_thickness = { value = -12, unit = "nm" }', "oxide_thickness"),
        ('no_such_thing = { value = 1, unit = "V" }', "no such parameter"),
        ("oxide_thickness = 12", "value = "),
        ('oxide_thickness = { value = nan, unit = "nm" }', "finite"),
    ],
)
def test_bad_cards_name_file_and_parameter(tmp_path, entry, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'[card]\nfamily = "StanfordReRAM"\ndefaults = "model"\n[parameters]\n{entry}\n')
    with pytest.raises(ValueError, match=message) as err:
        read_card(path)
    assert "bad.toml" in str(err.value)


def test_unknown_family(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[card]\nfamily = "Memristor9000"\n')
    with pytest.raises(ValueError, match="unknown device family"):
        read_card(path)
    assert jnp.asarray(1.0) == 1.0


def test_card_missing_a_parameter_is_an_error_unless_it_takes_the_model_defaults(tmp_path):
    full = (imcphys.cards_dir() / "reram_stanford_v1.toml").read_text()
    lines = [line for line in full.splitlines() if not line.startswith(("i0 ", "v0 "))]
    path = tmp_path / "partial.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"partial.toml: missing parameter\(s\) \['v0', 'i0'\] of StanfordReRAM"):
        read_card(path)
    path.write_text("\n".join(lines).replace("[card]", '[card]\ndefaults = "model"', 1) + "\n")
    card = read_card(path)
    # the defaults are the Verilog-A's (rram_v_1_0_0.va: I0 = 1 mA, V0 = 0.25 V), recorded as such
    assert float(card.device().i0) == 1e-3 and float(card.device().v0) == 0.25
    assert card.provenance["i0"] == {"unit": "A", "status": "default", "source": "imcphys StanfordReRAM default"}
    assert card.provenance["gap_min"]["status"] == "published"
    path.write_text(full.replace("[card]", '[card]\ndefaults = "yes"', 1))
    with pytest.raises(ValueError, match='defaults must be "model"'):
        read_card(path)


def test_every_embedded_card_gives_every_parameter():
    for name in imcphys.card_names():
        card = read_card(name)
        assert "defaults" not in card.meta, name
        assert set(card.provenance) == set(imcphys.parameter_units(card.device())), name
