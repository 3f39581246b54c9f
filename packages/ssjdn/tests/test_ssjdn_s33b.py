"""Issue 19, session 33b: ``lsd_head_lr``, LSD's heads with a learning rate of their own
(`ssjdn.train.optimizer_groups`), rule ``docs/benchmarks/ssjdn_validation_s33b_rule.md``."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig, ablation_config, make_multiscale_scenes
from ssjdn.baselines import VARIANTS
from ssjdn.bench import BenchSettings, cache_stem, method_key
from ssjdn.train import optimizer_groups, train_retrieval

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
RUNG, FULL_NEW = "+LSD centered head lr 10", "BSD centered head lr 10"


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0.0, ValueError, "lsd_head_lr must be a finite number > 0"),
        (-1.0, ValueError, "lsd_head_lr must be a finite number > 0"),
        (math.inf, ValueError, "lsd_head_lr must be a finite number > 0"),
        (math.nan, ValueError, "lsd_head_lr must be a finite number > 0"),
        ("10", TypeError, "lsd_head_lr must be a number"),
        (True, TypeError, "lsd_head_lr must be a number"),
    ],
)
def test_bad_lsd_head_lr_is_refused(value, error, match) -> None:
    with pytest.raises(error, match=match):
        SSJDNConfig(lsd_head_lr=value)


def test_lsd_head_lr_needs_lsd() -> None:
    with pytest.raises(ValueError, match="lsd_head_lr=10.0 needs lsd=True"):
        SSJDNConfig(lsd=False, lsd_head_lr=10.0)
    assert SSJDNConfig(lsd=False).lsd_head_lr == 1.0  # the neutral value is fine without LSD


def _model(**kw) -> tuple[SSJDN, object]:
    d = make_multiscale_scenes(8, 32, seed=1)
    return SSJDN.from_data(d, SSJDNConfig(**TINY, **kw), seed=0), d


def test_groups_split_the_heads_at_their_own_lr() -> None:
    """Default: one group (the optimizer the committed runs used); 10x: the LSD module's
    parameters, and only they, in a second group at 10 lr; together every trainable one."""
    m, _ = _model()
    (one,) = optimizer_groups(m, 2e-3)
    assert set(one) == {"params"} and len(one["params"]) == len(list(m.parameters()))
    m, _ = _model(lsd_head_lr=10.0)
    rest, heads = optimizer_groups(m, 2e-3)
    assert heads["lr"] == pytest.approx(2e-2) and "lr" not in rest
    assert {id(p) for p in heads["params"]} == {id(p) for p in m.lsd.parameters()}
    ids = [id(p) for p in rest["params"] + heads["params"]]
    assert sorted(ids) == sorted(id(p) for p in m.parameters()) and len(set(ids)) == len(ids)


def test_only_the_heads_step_differs_on_the_first_update() -> None:
    """One Adam step from the same weights on the same batch: with lsd_head_lr=10 the heads
    move further than with 1 and every other parameter's step is identical (same gradients, same
    lr; the groups change nothing else)."""
    runs = {}
    for scale in (1.0, 10.0):
        m, d = _model(lsd_head_lr=scale)
        before = {n: p.detach().clone() for n, p in m.named_parameters()}
        train_retrieval(m, d, epochs=1, batch_size=64, warmup_epochs=0, progress=False, seed=0)
        runs[scale] = {n: p.detach() - before[n] for n, p in m.named_parameters()}
    heads = [n for n in runs[1.0] if n.startswith("lsd.")]
    enc = [n for n in runs[1.0] if not n.startswith("lsd.")]
    assert heads and enc
    for n in enc:
        assert torch.equal(runs[1.0][n], runs[10.0][n]), n
    moved1 = sum(float(runs[1.0][n].abs().sum()) for n in heads)
    moved10 = sum(float(runs[10.0][n].abs().sum()) for n in heads)
    assert moved10 > 5 * moved1 > 0


def test_rows_differ_from_todays_in_that_option_only(method_keys) -> None:
    a, b = ablation_config(RUNG).to_dict(), ablation_config("+LSD centered").to_dict()
    assert VARIANTS[RUNG][0] == "+LSD" and {k for k in a if a[k] != b[k]} == {"lsd_head_lr"}
    full = ablation_config(FULL_NEW).to_dict()
    today = SSJDNConfig().to_dict()
    assert {k for k in full if full[k] != today[k]} == {"lsd_head_lr"} and full["lsd_head_lr"] == 10
    keys = method_keys()
    assert {n: method_key(n) for n in keys} == keys  # every recorded row keeps its key
    assert method_key(RUNG) not in keys.values() and method_key(FULL_NEW) not in keys.values()
    assert SSJDNConfig().lsd_head_lr == 1.0


def _cache(root: Path, runs: dict[str, list[float]], seeds: range) -> None:
    folder = root / "val" / BenchSettings.quick().key()
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in runs.items():
        for seed, v in zip(seeds, values):
            metrics = {"mR": v, "hard_mR": v / 2}
            (folder / f"{cache_stem(name, seed)}.json").write_text(json.dumps({"metrics": metrics}))


def _decide(root: Path, capsys) -> str:
    assert decide.main(["--rule", "s33b_head_lr", "--cache", str(root)]) == 0
    return capsys.readouterr().out


BASE = [14.0, 15.0, 16.0, 14.5, 15.5]


def test_rule_s33b_adopts_only_when_every_cell_passes(tmp_path, capsys) -> None:
    seeds = range(90, 95)
    up = [v + 1.0 + 0.1 * i for i, v in enumerate(BASE)]
    _cache(tmp_path, {"+bidirectional centered": BASE, "+LSD centered": BASE, RUNG: up}, seeds)
    assert "partial (H3 lacks seeds)" in _decide(tmp_path, capsys)  # stage 2 not run
    _cache(tmp_path, {"BSD centered": BASE, FULL_NEW: [v - 1.0 for v in BASE]}, seeds)
    out = _decide(tmp_path, capsys)
    assert "H3 fails" in out and "ADOPTED" not in out  # harm in the full model
    _cache(tmp_path, {FULL_NEW: [v + 0.1 * (-1) ** i for i, v in enumerate(BASE)]}, seeds)
    assert "ADOPTED on validation: H1 and H2 and H3 pass" in _decide(tmp_path, capsys)


def test_rule_s33b_rejects_harm_on_the_rung(tmp_path, capsys) -> None:
    """C above the row without LSD (H1 passes) but below today's LSD row (H2 fails)."""
    seeds = range(90, 95)
    runs = {
        "+bidirectional centered": BASE,
        RUNG: [v + 1.0 + 0.1 * i for i, v in enumerate(BASE)],
        "+LSD centered": [v + 2.0 + 0.05 * i for i, v in enumerate(BASE)],
    }
    _cache(tmp_path, runs, seeds)
    out = _decide(tmp_path, capsys)
    assert "H2 fails" in out and "ADOPTED" not in out
