"""Issue 19, session 32: ``sgs_guide_c2f="fine_max"``, the coarse->fine pass guided by salience
extracted at the finest scale and expressed on its own (coarsest) grid (`fine_max_salience`),
rule ``docs/benchmarks/ssjdn_validation_s32_rule.md``."""

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ssjdn import (
    SSJDN,
    BidirectionalScaleDecoupling,
    SSJDNConfig,
    ablation_config,
    local_contrast_salience,
    make_multiscale_scenes,
)
from ssjdn.baselines import VARIANTS
from ssjdn.bench import method_key
from ssjdn.diagnostics import pass_overlap
from ssjdn.ssjdn import fine_max_salience

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
NEW, TODAY, ONE = (
    "+bidirectional centered fine-max c2f",
    "+bidirectional centered",
    "+SGS (one direction) centered",
)


def test_fine_max_salience_is_the_max_pooled_fine_contrast_stretched() -> None:
    """One bright fine cell on a uniform ground: its coarse cell is 1, the coarse cells its
    3 x 3 neighbourhood does not reach are 0, and the map equals the max-pooled fine contrast
    stretched to [0, 1] exactly (float64)."""
    x = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    x[0, :, 5, 6] = 1.0  # fine cell (5, 6) of the 16 x 16 grid -> coarse cell (1, 1) of 4 x 4
    x[1, :, 14, 1] = 1.0  # -> coarse cell (3, 0)
    a = fine_max_salience(x, (16, 16), (4, 4))
    assert a.shape == (2, 1, 4, 4) and a.dtype == torch.float64
    assert a[0, 0, 1, 1] == 1.0 and a[1, 0, 3, 0] == 1.0
    assert a[0, 0, 3, 3] == 0.0 and a[1, 0, 0, 3] == 0.0
    c = F.adaptive_max_pool2d(local_contrast_salience(x, (16, 16)), (4, 4))
    lo, hi = c.amin(dim=(2, 3), keepdim=True), c.amax(dim=(2, 3), keepdim=True)
    assert torch.equal(a, (c - lo) / (hi - lo))
    # the coarse grid's own contrast averages the one-cell object into its cell's mean
    coarse = local_contrast_salience(x, (4, 4))
    assert float(coarse[0, 0, 1, 1]) == 1.0 and float(coarse[0, 0, 0, 0]) > 0.0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"fine_size": (2, 2)}, "fine_size must be two ints at least as large as size"),
        ({"fine_size": (16,)}, "fine_size must be two ints"),
        ({"size": (0, 4)}, "size must be two positive ints"),
        ({"kernel": 4}, "kernel must be an odd int >= 3"),
    ],
)
def test_fine_max_salience_bad_input(kw: dict, match: str) -> None:
    args = {"images": torch.rand(1, 3, 16, 16), "fine_size": (8, 8), "size": (4, 4), **kw}
    with pytest.raises(ValueError, match=match):
        fine_max_salience(**args)
    with pytest.raises(ValueError, match="images must be a"):
        fine_max_salience(torch.rand(3, 16, 16), (8, 8), (4, 4))


@torch.no_grad()
def test_only_the_coarse_to_fine_passs_acted_on_scales_change(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """The fine->coarse pass and the coarse->fine pass's guiding (coarsest) scale are
    bit-identical to the default's; the coarse->fine pass's other scales differ; its guide is
    `fine_max_salience` from the finest grid onto the coarsest."""
    projected, images = bsd_inputs()
    same = guide_bsd(pool="centered")
    new = guide_bsd(pool="centered", guide_c2f="fine_max")
    new.load_state_dict(same.state_dict())
    fa, ma = same.pass_features(projected, images)
    fb, mb = new.pass_features(projected, images)
    assert all(torch.equal(x, y) for x, y in zip(fa[0], fb[0]))
    assert torch.equal(fa[1][3], fb[1][3])
    assert all(not torch.allclose(fa[1][j], fb[1][j]) for j in (0, 1, 2))
    guides = new.pass_guides(mb, images)
    assert torch.equal(guides[1], fine_max_salience(images, (16, 16), (2, 2)))
    assert torch.equal(guides[0], same.pass_guides(ma, images)[0])
    with pytest.raises(ValueError, match="guide_c2f='fine_max' needs the images"):
        new.c2f_guide(mb[1][0], (16, 16), None)


def test_the_row_differs_from_todays_bidirectional_row_in_that_option_only(method_keys) -> None:
    assert VARIANTS[NEW][0] == "+bidirectional"
    a, b = ablation_config(NEW).to_dict(), ablation_config(TODAY).to_dict()
    assert {k for k in a if a[k] != b[k]} == {"sgs_guide_c2f"} and a["sgs_guide_c2f"] == "fine_max"
    full = ablation_config("BSD centered fine-max c2f").to_dict()
    assert {k for k, v in full.items() if v != SSJDNConfig().to_dict()[k]} == {"sgs_guide_c2f"}
    # a new key for the new rows, every row recorded before keeps its own
    keys = method_keys()
    assert {n: method_key(n) for n in keys} == keys
    assert method_key(NEW) not in keys.values() and SSJDNConfig().sgs_guide_c2f == "same"


def test_the_guide_reaches_the_model_and_marks_the_small_objects() -> None:
    """In a model the option reaches BSD; on twin scenes the coarse->fine pass's map keeps the
    small objects more than elsewhere (its default map does not), the fine->coarse pass's map is
    unchanged."""
    d = make_multiscale_scenes(8, 64, seed=3, twin_fraction=1.0)
    d = dataclasses.replace(d, images=d.images.double())
    a = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0).double()
    b = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_guide_c2f="fine_max"), seed=0).double()
    assert b.bsd.guide_c2f == "fine_max" and a.bsd.guide_c2f == "same"
    oa, ob = pass_overlap(a, d), pass_overlap(b, d)
    assert ob["keep_small_p0"] == oa["keep_small_p0"]
    assert ob["keep_small_p1"] > 2.0 > 1.2 > oa["keep_small_p1"]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sgs_guide_c2f": "complement"}, "sgs_guide_c2f must be 'same' or 'fine_max'"),
        ({"sgs_guide_c2f": 1}, "sgs_guide_c2f must be 'same' or 'fine_max'"),
        ({"sgs_guide_c2f": "fine_max", "sgs": "fine_to_coarse"}, "needs sgs='both'"),
        ({"sgs_guide_c2f": "fine_max", "sgs_guide": "learned"}, "sgs_guide='contrast'"),
        (
            {"sgs_guide_c2f": "fine_max", "sgs_scope": "chain", "sgs_guide": "learned"},
            "sgs_scope='guide'",
        ),
    ],
)
def test_bad_values_name_the_argument(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SSJDNConfig(**kw)


def test_bsd_bad_values_name_the_argument() -> None:
    with pytest.raises(ValueError, match="guide_c2f must be 'same' or 'fine_max'"):
        BidirectionalScaleDecoupling(4, guide_c2f="f2c_salience")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="guide_c2f='fine_max' needs sgs='both'"):
        BidirectionalScaleDecoupling(4, guide_c2f="fine_max")  # scope "chain", guide "learned"


def test_rule_s32_decides_on_made_up_runs(tmp_path, capsys, write_val_runs: Callable) -> None:
    """F1 (new - one direction above 0) and F2 (new - today's bidirectional mean >= 0) pass,
    then F3 (the full model not worse) is partial until stage 2 has run; F2 failing rejects."""
    seeds = range(85, 90)
    base = [15.0, 16.0, 14.5, 15.5, 16.5]
    write_val_runs(
        tmp_path,
        {
            ONE: base,
            TODAY: [v + 0.2 for v in base],
            NEW: [v + 1.0 + 0.1 * i for i, v in enumerate(base)],
        },
        seeds,
    )
    assert decide.main(["--rule", "s32_fine_max", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "F1, F2 pass; partial (F3 lacks seeds)" in out
    write_val_runs(tmp_path, {"BSD centered": base, "BSD centered fine-max c2f": base}, seeds)
    assert decide.main(["--rule", "s32_fine_max", "--cache", str(tmp_path)]) == 0
    assert "ADOPTED on validation: F1 and F2 and F3 pass" in capsys.readouterr().out
    write_val_runs(tmp_path, {TODAY: [v + 2.0 for v in base]}, seeds)
    assert decide.main(["--rule", "s32_fine_max", "--cache", str(tmp_path)]) == 0
    assert "F2 fails" in capsys.readouterr().out
