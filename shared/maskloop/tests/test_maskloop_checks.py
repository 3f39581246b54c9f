"""maskloop.checks and maskloop.distributed on one process."""

import numpy as np
import pytest
import torch
from maskloop import checks, distributed


def test_checks_return_normalised_values_and_name_the_argument() -> None:
    assert checks.check_int("n", np.int64(3), 1) == 3 and checks.check_positive_int("n", 2) == 2
    assert checks.check_sparsity(0.5) == 0.5 and checks.check_keep(1) == 1.0
    assert checks.check_real("lr", 1e-3, low=0, low_inclusive=False) == 1e-3
    assert checks.check_choice("scope", "layer", ("global", "layer")) == "layer"
    with pytest.raises(TypeError, match="n must be an int, got bool"):
        checks.check_int("n", True)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        checks.check_positive_int("n", 0)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\) \(the fraction of weights"):
        checks.check_sparsity(1.0)
    with pytest.raises(ValueError, match=r"keep must be in \(0, 1\]"):
        checks.check_keep(0.0)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        checks.check_fraction("alpha", "0.5")
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, inf\)"):
        checks.check_real("lr", float("nan"), low=0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"scope must be one of \['global', 'layer'\]"):
        checks.check_choice("scope", "all", ("global", "layer"))
    from maskloop import _checks  # the old private module still works

    assert _checks.check_fraction is checks.check_fraction


@pytest.mark.parametrize("bad", [None, 3, (0, 8), (8, -1), (8, True), (8.0, 8), "88"])
def test_check_input_shape_returns_a_tuple_and_names_the_argument(bad: object) -> None:
    assert checks.check_input_shape([1, 8, 8]) == (1, 8, 8)
    assert checks.check_input_shape((64,), "shape") == (64,)
    with pytest.raises(ValueError, match=r"shape must be a sequence of positive ints, got "):
        checks.check_input_shape(bad, "shape")


def test_distributed_helpers_are_no_ops_on_one_process() -> None:
    t = torch.tensor([1.0, 2.0])
    assert distributed.world_size() == 1 and distributed.rank() == 0
    assert not distributed.is_distributed()
    assert distributed.all_reduce_(t, "mean") is t and t.tolist() == [1.0, 2.0]
    assert distributed.broadcast_(t) is t
    distributed.barrier()
    with pytest.raises(ValueError, match="op must be one of"):
        distributed.all_reduce_(t, "prod")
    with pytest.raises(TypeError, match="tensor"):
        distributed.all_reduce_([1.0])
