"""Session 22's two readings that bring SynFlow's data-free path term into LNPT's mask:
`prune(allocation="synflow")` (per-layer budgets from iterative SynFlow, the gap ranking within
each layer) and `prune(path_term="synflow")` (the gap score times SynFlow's score), with the
bench options and CLI flags that reach them. Float64 throughout."""

import math

import lnpt
import pytest
import torch
from lnpt.baselines import synflow_prune
from lnpt.bench import MODELS, BenchConfig, make_mask
from lnpt.learning_gap import path_product, synflow_allocation
from maskloop import WeightMask
from maskloop import scores as ml_scores
from torch import nn


def _pair():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    teacher = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4), nn.Tanh(), nn.Linear(4, 3))
    return student.double(), teacher.double()


def _counts(mask: WeightMask) -> dict[str, int]:
    return {n: int(mask[n].sum()) for n in mask.names}


def test_synflow_allocation_one_round_takes_synflows_counts_and_the_gaps_ranking():
    """One round: every tensor keeps exactly as many entries as iterative SynFlow's mask at that
    sparsity, and within each tensor its highest gap scores; the counts differ from the plain
    global top-k of the gap here, and the sparsity is exact."""
    student, teacher = _pair()
    x = torch.randn(16, 5, dtype=torch.float64)
    gap = lnpt.score(student, teacher, [x])
    mask = lnpt.prune(student, teacher, [x], 0.7, rounds=1, allocation="synflow", input_shape=(5,))
    params = dict(student.named_parameters())
    syn = synflow_prune(student, (5,), 0.7, params={n: params[n] for n in mask.names})
    assert _counts(mask) == _counts(syn)
    for n in mask.names:
        if 0 < int(mask[n].sum()) < mask[n].numel():
            assert gap[n][mask[n]].min() >= gap[n][~mask[n]].max()
    plain = lnpt.prune(student, teacher, [x], 0.7, rounds=1)
    assert plain.num_pruned == mask.num_pruned == math.floor(0.7 * mask.numel + 0.5)
    assert _counts(plain) != _counts(mask)


def test_synflow_allocation_caps_at_what_previous_kept_and_keeps_the_total():
    """A tensor asked for more than `previous` left it keeps all it has; the excess goes to the
    others by their SynFlow counts, never above what they have left."""
    student, _ = _pair()
    params = dict(student.named_parameters())
    names = ["0.weight", "2.weight", "4.weight"]
    ps = {n: params[n] for n in names}
    free = synflow_allocation(student, (5,), 0.5, params=ps, min_density=0.0)
    assert sum(free.values()) == 66 - 33
    small = next(n for n in names if free[n] >= 2)
    prev = WeightMask({n: torch.ones_like(params[n], dtype=torch.bool) for n in names})
    prev[small].reshape(-1)[1:] = False  # one entry left in that tensor
    capped = synflow_allocation(student, (5,), 0.5, params=ps, previous=prev, min_density=0.0)
    assert capped[small] == 1
    assert sum(capped.values()) == sum(free.values())
    assert all(capped[n] >= free[n] for n in names if n != small)


def test_path_product_is_the_entrywise_product_with_synflow():
    student, teacher = _pair()
    x = torch.randn(8, 5, dtype=torch.float64)
    gap = lnpt.score(student, teacher, [x])
    params = dict(student.named_parameters())
    ps = {n: params[n] for n in gap}
    syn = ml_scores.synflow(student, params=ps, input_shape=(5,))
    got = path_product(gap, student, (5,), params=ps)
    for n in gap:
        assert got[n].dtype == torch.float64
        torch.testing.assert_close(got[n], gap[n] * syn[n], rtol=0, atol=0)
    # one round of prune(path_term=...) is the global top-k of that product
    mask = lnpt.prune(student, teacher, [x], 0.6, rounds=1, path_term="synflow", input_shape=(5,))
    flat = torch.cat([got[n].reshape(-1) for n in gap])
    kept = torch.cat([mask[n].reshape(-1) for n in gap])
    assert flat[kept].min() >= flat[~kept].max()


def test_synflow_readings_iterate_to_an_exact_nested_mask():
    student, teacher = _pair()
    x = torch.randn(16, 5, dtype=torch.float64)
    for kw in ({"allocation": "synflow"}, {"path_term": "synflow"}):
        m = lnpt.prune(student, teacher, [x], 0.8, rounds=3, input_shape=[5], **kw)
        assert m.num_pruned == math.floor(0.8 * m.numel + 0.5)
        assert min(_counts(m).values()) >= 1


def test_synflow_readings_bad_input_name_the_argument():
    student, teacher = _pair()
    x = torch.randn(4, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="allocation='synflow' needs input_shape"):
        lnpt.prune(student, teacher, [x], 0.5, allocation="synflow")
    with pytest.raises(ValueError, match="path_term='synflow' needs input_shape"):
        lnpt.prune(student, teacher, [x], 0.5, path_term="synflow")
    with pytest.raises(ValueError, match="path_term must be one of"):
        lnpt.prune(student, teacher, [x], 0.5, path_term="grasp", input_shape=(5,))
    with pytest.raises(ValueError, match="input_shape must be a sequence of positive ints"):
        lnpt.prune(student, teacher, [x], 0.5, path_term="synflow", input_shape=(0,))
    with pytest.raises(ValueError, match="input_shape must be a sequence of positive ints"):
        lnpt.prune(student, teacher, [x], 0.5, allocation="synflow", input_shape=5)
    with pytest.raises(ValueError, match="allocation='synflow'.*scope"):
        lnpt.prune(
            student, teacher, [x], 0.5, allocation="synflow", scope="layer", input_shape=(5,)
        )


def test_bench_passes_the_input_shape_and_options_change_the_fingerprint():
    """make_mask gives prune the model's input shape for the two readings (no error without it);
    the default config carries neither option, and each, set, changes the fingerprint."""
    spec = MODELS["mlp"]
    data = spec.data(0)
    torch.manual_seed(0)
    init, teacher = spec.build(), spec.build().eval()
    base = BenchConfig(models=("mlp",), score_batches=1)
    assert not {"path_term"} & set(base.lnpt_options)
    masks = {}
    for opts in ({"allocation": "synflow"}, {"path_term": "synflow"}):
        cfg = BenchConfig(models=("mlp",), score_batches=1, lnpt_options=opts)
        assert cfg.fingerprint("mlp") != base.fingerprint("mlp")
        m = make_mask(
            "lnpt", init, teacher, data, 0.9, cfg, 0, spec, lnpt_options={**opts, "rounds": 2}
        )
        masks[str(opts)] = m
        assert m.num_pruned == math.floor(0.9 * m.numel + 0.5)
    assert _counts(masks["{'allocation': 'synflow'}"]) != _counts(masks["{'path_term': 'synflow'}"])


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--score-path", "grasp"], "argument --score-path: invalid choice: 'grasp'"),
        (["--score-allocation", "erk"], "argument --score-allocation: invalid choice: 'erk'"),
        (["--anatomy", "--score-path", "synflow"], "--score-path applies to the test"),
    ],
    ids=["score-path-unknown", "score-allocation-unknown", "score-path-with-anatomy"],
)
def test_cli_refuses_bad_synflow_flags(argv, says, bench_refuses):
    bench_refuses(argv, says)
