"""Issue 19, session 31: the probe of whether the two BSD passes fight over the same features
(``scripts/probe_s31.py``). Its gradient split must add up to the model's gradient exactly, its
masks and maps must measure what they say."""

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from ssjdn import SSJDN
from ssjdn.baselines import ablation_config
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.train import PairBatches

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import probe_s31  # noqa: E402  (the scripts folder is not a package)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


def _model_and_batch(seed: int = 5):
    d = make_multiscale_scenes(16, 64, seed=seed, twin_fraction=1.0)
    d = dataclasses.replace(d, images=d.images.double())
    m = SSJDN.from_data(d, ablation_config(probe_s31.METHOD, **TINY), seed=0).double()
    ids, mask = m.text.tokenize(d.flat_captions)
    batch = next(iter(PairBatches(d, ids, mask, 16, torch.Generator().manual_seed(3))))
    return m, d, batch


def test_the_two_paths_gradients_add_up_to_the_models_gradient() -> None:
    m, _, batch = _model_and_batch()
    m.train()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    gP, gS, shared = probe_s31._path_grads(m, batch)
    m.load_state_dict(state)  # the same BatchNorm statistics for the second forward pass
    full = probe_s31._full_grad(m, batch, shared)
    assert torch.allclose(gS[0] + gS[1], full, rtol=1e-9, atol=1e-12)
    # both paths carry a gradient, and they are not the same one
    assert gS[0].norm() > 0 and gS[1].norm() > 0
    assert not torch.allclose(gS[0], gS[1])
    assert len(gP[0]) == len(gP[1]) == 4
    # the model reads its own projection again afterwards (the probe restores bsd_inputs)
    assert "bsd_inputs" not in vars(m)


def test_without_a_second_pass_the_c2f_path_carries_nothing() -> None:
    m, _, batch = _model_and_batch()
    m.train()
    m.bsd.drop_chain = 1  # the c->f pass's features zeroed before the fusion layer
    _, gS, _ = probe_s31._path_grads(m, batch)
    assert gS[1].norm() == 0 and gS[0].norm() > 0


def test_grid_mask_is_the_area_share_of_each_cell() -> None:
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 0, 0] = True  # one pixel of the top-left 4 x 4 block
    masks[0, 4:, 4:] = True  # the whole bottom-right block
    got = probe_s31.grid_mask(masks, (2, 2))
    assert got.shape == (1, 1, 2, 2)
    assert torch.allclose(got[0, 0], torch.tensor([[1 / 16, 0.0], [0.0, 1.0]]))


def test_map_and_separation_probes_on_a_tiny_model() -> None:
    m, d, _ = _model_and_batch()
    maps = probe_s31.sgs_maps(m, d)
    # the f->c pass acts on scales 2-4, the c->f pass on 3, 2, 1; both on 2 and 3
    assert {k for k in maps if k.startswith("keep_small_p0")} == {
        f"keep_small_p0_s{j}" for j in (2, 3, 4)
    }
    assert {k for k in maps if k.startswith("map_corr")} == {"map_corr_s2", "map_corr_s3"}
    for j in (2, 3):
        assert 0.0 <= maps[f"f2c_mass_damped_by_c2f_s{j}"] <= 1.0
    # the contrast guide marks the small objects at the scale next to the finest
    assert maps["keep_small_p0_s2"] > 1.0
    sep = probe_s31.twin_separation(m, d)
    assert len(sep) == 8 and all(v >= 0 for v in sep.values())
    alias = probe_s31.guide_alias(m, d)
    assert alias["alias_small_mass_s2"] == pytest.approx(1.0, abs=1e-9)  # factor 2: bilinear = area


def test_report_table_from_made_up_results() -> None:
    row = {k: 0.5 for k, _ in probe_s31.ROWS} | {"hard_mR": 1.0, "mR": 2.0}
    res = {"seeds": {"66": {"trained": row, "init": row}, "65": {"trained": row, "init": row}}}
    table = probe_s31.report(res)
    lines = table.splitlines()
    assert lines[0].endswith("| seed 65 | seed 66 |")
    assert "2.000 ± 0.000 / 1.000 ± 0.000" in table
    n_init = sum(k.startswith(("grad", "batch")) for k, _ in probe_s31.ROWS)
    assert len(lines) == 2 + len(probe_s31.ROWS) + n_init
    assert all(line.count("|") == 5 for line in lines)  # no stray pipe in a label
