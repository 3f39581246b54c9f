"""Issue 19, twenty-first session: the whole ladder with wider projection heads (`proj_dim` 64,
`baselines.WIDE_LADDER`), and the width fields' input checks."""

import pytest
from ssjdn import SSJDN, SSJDNConfig, ablation_config
from ssjdn.baselines import ABLATION_LADDER, WIDE_LADDER
from ssjdn.bench import method_key
from ssjdn.scenes import make_multiscale_scenes

TINY = {"embed_dim": 16, "small_channels": (4, 8, 8, 8)}


@pytest.mark.parametrize("name", ["embed_dim", "proj_dim"])
@pytest.mark.parametrize("bad", [0, 1, -64, 2.5, 64.0, True, "64", None])
def test_widths_must_be_ints_of_at_least_two(name: str, bad: object) -> None:
    with pytest.raises(ValueError, match=f"{name} must be an int >= 2, got {bad!r}"):
        SSJDNConfig(**{name: bad})  # type: ignore[arg-type]


def test_wide_ladder_differs_from_todays_in_the_projection_width_only() -> None:
    assert list(WIDE_LADDER) == list(ABLATION_LADDER)
    for rung, wide in WIDE_LADDER.items():
        a, b = ablation_config(wide).to_dict(), ablation_config(rung).to_dict()
        assert {k for k in a if a[k] != b[k]} == {"proj_dim"}
        assert (a["proj_dim"], b["proj_dim"]) == (64, 32)
        assert method_key(wide) != method_key(rung)
    # the SGS rung's entry is session 19's width control: its cached runs keep their key
    assert method_key("+SGS proj 64 (one direction)") == "a7bef84f"
    assert method_key("+STL (full SSJDN)") == "3a9abf50"


def test_wider_projection_widens_exactly_the_projection_and_its_readers() -> None:
    """Dual encoder: the 1x1 projection (c_4 -> p) and the fusion (p -> d) are the only weights
    that depend on p, so p 32 -> 64 adds exactly (c_4 + 1 + d) * 32 parameters; in the multiscale
    rungs every scale's projection has p output channels."""
    data = make_multiscale_scenes(6, image_size=32, seed=0)
    count = {}
    for name in ("dual-encoder", "dual-encoder proj 64"):
        model = SSJDN.from_data(data, ablation_config(name, **TINY), seed=0)
        count[name] = sum(p.numel() for p in model.parameters())
        p = model.config.proj_dim
        assert [conv.out_channels for conv in model.proj] == [p]
        assert model.fuse.in_features == p
    c4, d = TINY["small_channels"][-1], TINY["embed_dim"]
    assert count["dual-encoder proj 64"] - count["dual-encoder"] == (c4 + 1 + d) * 32
    for name in ("+bidirectional proj 64", "+STL proj 64 (full SSJDN)"):
        model = SSJDN.from_data(data, ablation_config(name, **TINY), seed=0)
        assert [conv.out_channels for conv in model.proj] == [64] * 4
        assert model.encode_images(data.images[:3]).shape == (3, model.embedding_dim)
