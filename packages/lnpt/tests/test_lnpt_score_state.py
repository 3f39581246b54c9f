"""`lnpt_options={"score_epochs": E}`: LNPT's mask scored at the student after E epochs of its own
dense label-free training, then applied at init (session 18's reading)."""

import copy

import pytest
import torch
from lnpt.bench import BenchConfig, make_mask, partially_trained


@pytest.fixture(scope="module")
def setup(tiny_mlp_split):
    spec, data = tiny_mlp_split
    teacher, init = spec.build().eval(), spec.build()
    cfg = BenchConfig(models=("mlp",), score_batches=1, lnpt_options={"rounds": 1})
    return spec, data, teacher, init, cfg


def test_score_epochs_scores_a_trained_copy_and_leaves_the_init(setup):
    """E > 0: the mask has the requested size, differs from the mask at init, equals the mask read
    directly at the partially trained state, and the student's initial weights are untouched."""
    spec, data, teacher, init, cfg = setup
    before = copy.deepcopy(init.state_dict())
    at_init = make_mask("lnpt", init, teacher, data, 0.9, cfg, 0, spec)
    opts = {"rounds": 1, "score_epochs": 1}
    warm = make_mask("lnpt", init, teacher, data, 0.9, cfg, 0, spec, lnpt_options=opts)
    assert warm.num_pruned == at_init.num_pruned
    assert any(not torch.equal(warm[n], at_init[n]) for n in warm.names)
    for k, v in init.state_dict().items():
        assert torch.equal(v, before[k]), k
    state = partially_trained(init, teacher, data, cfg, 0, spec, 1)
    assert any(not torch.equal(p, q) for p, q in zip(state.parameters(), init.parameters()))
    direct = make_mask("lnpt", state, teacher, data, 0.9, cfg, 0, spec)
    assert all(torch.equal(warm[n], direct[n]) for n in warm.names)


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_score_epochs_bad_value_names_it(setup, value, error):
    """A negative, fractional or boolean `score_epochs` is refused, naming it."""
    spec, data, teacher, init, cfg = setup
    with pytest.raises(error, match="score_epochs"):
        make_mask("lnpt", init, teacher, data, 0.9, cfg, 0, spec, {"score_epochs": value})


def test_score_epochs_is_in_the_cache_key_and_off_by_default():
    """The default config does not carry the option (so its fingerprint is the committed runs'),
    and a set `score_epochs` changes the fingerprint (its runs never reuse the at-init units)."""
    a = BenchConfig(models=("cnn",))
    assert "score_epochs" not in a.lnpt_options
    b = BenchConfig(models=("cnn",), lnpt_options={"score_epochs": 5})
    assert b.fingerprint("cnn") != a.fingerprint("cnn")
