"""`prune(allocation="mass")`: per-layer budgets from the score's own layer mass (session 19's
reading for the digits CNN), and the CLI flags that reach it."""

import math

import lnpt
import pytest
import torch
from lnpt.bench import BenchConfig
from lnpt.learning_gap import mass_allocation
from maskloop import WeightMask
from torch import nn


def test_mass_allocation_splits_by_mass_with_floors_and_caps():
    """Floors first, then the rest by mass; a layer asked for more than it has keeps all of it and
    its excess goes to the others; the total is exactly the kept count of the sparsity."""
    scores = {
        "a": torch.full((10,), 6.0, dtype=torch.float64),  # mass 60: would want more than 10
        "b": torch.full((100,), 0.3, dtype=torch.float64),  # mass 30
        "c": torch.full((100,), 0.1, dtype=torch.float64),  # mass 10
    }
    counts = mass_allocation(scores, 0.8, min_density=0.0)  # keeps 42 of 210
    assert counts == {"a": 10, "b": 24, "c": 8}  # a full; 32 split 30 : 10
    floored = mass_allocation(scores, 0.8, min_density=0.1)  # floors 1, 10, 10; a full, 12 by 3:1
    assert floored == {"a": 10, "b": 19, "c": 13}
    assert sum(floored.values()) == 210 - math.floor(0.8 * 210 + 0.5)


def test_mass_allocation_reads_only_what_previous_kept():
    """Mass and capacity come from the entries the previous mask kept; zero mass everywhere falls
    back to the entries left."""
    s = {"a": torch.tensor([9.0, 1.0, 1.0, 1.0]), "b": torch.tensor([1.0, 1.0, 1.0, 1.0])}
    prev = WeightMask(
        {"a": torch.tensor([False, True, True, True]), "b": torch.ones(4, dtype=bool)}
    )
    assert mass_allocation(s, 0.5, previous=prev, min_density=0.0) == {"a": 2, "b": 2}
    zero = {n: torch.zeros(4) for n in s}
    assert mass_allocation(zero, 0.5, previous=prev, min_density=0.0) == {"a": 2, "b": 2}
    with pytest.raises(ValueError, match="min_density"):
        mass_allocation(s, 0.9, min_density=0.5)


def _pair():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    teacher = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4), nn.Tanh(), nn.Linear(4, 3))
    return student.double(), teacher.double()


def test_prune_mass_keeps_each_layers_top_by_its_mass_share():
    """One round: per-tensor kept counts are `mass_allocation`'s, each tensor keeps its own highest
    scores, the sparsity is exact, and the counts differ from global top-k here."""
    student, teacher = _pair()
    x = torch.randn(16, 5, dtype=torch.float64)
    scores = lnpt.score(student, teacher, [x])
    mask = lnpt.prune(student, teacher, [x], 0.6, rounds=1, allocation="mass", min_density=0.0)
    counts = mass_allocation(scores, 0.6, min_density=0.0)
    assert {n: int(mask[n].sum()) for n in mask.names} == counts
    for n in mask.names:
        if 0 < counts[n] < mask[n].numel():
            assert scores[n][mask[n]].min() >= scores[n][~mask[n]].max()
    plain = lnpt.prune(student, teacher, [x], 0.6, rounds=1, min_density=0.0)
    assert plain.num_pruned == mask.num_pruned
    assert {n: int(plain[n].sum()) for n in plain.names} != counts
    nested = lnpt.prune(student, teacher, [x], 0.8, rounds=3, allocation="mass")
    assert nested.num_pruned == math.floor(0.8 * nested.numel + 0.5)


def test_prune_allocation_bad_values_name_it():
    student, teacher = _pair()
    x = torch.randn(4, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="allocation"):
        lnpt.prune(student, teacher, [x], 0.5, allocation="layer")
    with pytest.raises(ValueError, match="allocation='mass'.*scope"):
        lnpt.prune(student, teacher, [x], 0.5, allocation="mass", scope="layer")


def test_scoring_flags_set_lnpt_options_and_keys():
    """The default config carries no allocation or rounds (committed keys stay); each option, set,
    changes the fingerprint."""
    a = BenchConfig(models=("cnn",))
    assert not {"allocation", "rounds"} & set(a.lnpt_options)
    for opts in ({"allocation": "mass"}, {"rounds": 30}):
        b = BenchConfig(models=("cnn",), lnpt_options=opts)
        assert b.fingerprint("cnn") != a.fingerprint("cnn")
