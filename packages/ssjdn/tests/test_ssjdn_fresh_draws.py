"""Issue 19, sixth pass: validation seeds 5..9 are fresh draws (no scene generator seed shared
with the seeds 0..4 that chose the defaults, nor with the test draws), and `split_seeds` checks
its input."""

import pytest
import torch
from ssjdn.bench import BenchSettings, bench_data, split_seeds


def test_fresh_validation_seeds_share_no_draw_with_earlier_runs() -> None:
    used = {g for s in range(5) for split in ("test", "val") for g in split_seeds(s, split)}
    fresh = {g for s in range(5, 10) for g in split_seeds(s, "val")}
    assert len(fresh) == 15 and not fresh & used
    assert split_seeds(7, "val") == (4007, 5007, 6007)
    assert split_seeds(0, "test") == (1000, 2000, 3000)


def test_bench_data_of_a_fresh_seed_differs_from_the_earlier_seed() -> None:
    tiny = BenchSettings(n_train=6, n_test=4, image_size=32, epochs=1)
    old, new = bench_data(tiny, 0, "val"), bench_data(tiny, 5, "val")
    for a, b in zip(old, new):
        assert not torch.equal(a.images, b.images)
    again = bench_data(tiny, 5, "val")  # and the draw is a function of the seed
    assert all(torch.equal(a.images, b.images) for a, b in zip(new, again))


@pytest.mark.parametrize(
    ("seed", "split", "match"),
    [
        (0, "train", "split must be"),
        (-1, "val", "seed"),
        (1000, "val", "seed must be < 1000"),
        (1.5, "val", "seed"),
    ],
)
def test_split_seeds_rejects_bad_input(seed: object, split: str, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        split_seeds(seed, split)  # type: ignore[arg-type]
