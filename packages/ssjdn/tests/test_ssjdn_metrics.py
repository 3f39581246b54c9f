"""Retrieval metrics against a brute-force loop (ties included) and the speed goal."""

import time

import numpy as np
import pytest
import torch
from ssjdn.metrics import retrieval_metrics, retrieval_ranks


def brute_force(sims: np.ndarray, cap_img: np.ndarray, ties: str) -> dict[str, float]:
    """Sort candidates one query at a time; a tie puts wrong candidates first (pessimistic) or last."""
    n_img, n_cap = sims.shape
    wrong_first = ties == "pessimistic"
    r_i2t, r_t2i = [], []
    for i in range(n_img):
        keyed = []
        for j in range(n_cap):
            right = bool(cap_img[j] == i)
            keyed.append((-sims[i, j], right if wrong_first else not right, j, right))
        keyed.sort()
        r_i2t.append(next(pos for pos, item in enumerate(keyed, 1) if item[3]))
    for j in range(n_cap):
        keyed = []
        for i in range(n_img):
            right = bool(cap_img[j] == i)
            keyed.append((-sims[i, j], right if wrong_first else not right, i, right))
        keyed.sort()
        r_t2i.append(next(pos for pos, item in enumerate(keyed, 1) if item[3]))
    out = {}
    for k in (1, 5, 10):
        out[f"i2t_R@{k}"] = 100.0 * np.mean([r <= k for r in r_i2t])
    for k in (1, 5, 10):
        out[f"t2i_R@{k}"] = 100.0 * np.mean([r <= k for r in r_t2i])
    out["mR"] = float(np.mean(list(out.values())))
    return out


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_brute_force_with_ties(seed: int, ties: str) -> None:
    rng = np.random.default_rng(seed)
    n_img = 23
    cap_img = np.repeat(np.arange(n_img), 5)
    rng.shuffle(cap_img)
    sims = rng.integers(0, 4, size=(n_img, cap_img.size)).astype(float)  # many ties
    fast = retrieval_metrics(sims, cap_img, ties=ties)
    slow = brute_force(sims, cap_img, ties)
    assert fast.keys() == slow.keys()
    for k in fast:
        assert fast[k] == pytest.approx(slow[k]), k


def test_metrics_continuous_and_torch_input() -> None:
    rng = np.random.default_rng(5)
    cap_img = np.repeat(np.arange(30), 5)
    sims = rng.normal(size=(30, 150))
    a = retrieval_metrics(sims, cap_img)
    b = retrieval_metrics(torch.from_numpy(sims), torch.from_numpy(cap_img))
    assert a == b == pytest.approx(brute_force(sims, cap_img, "pessimistic"))


def test_ties_pessimistic_vs_optimistic() -> None:
    sims = np.zeros((3, 3))
    r_p, t_p = retrieval_ranks(sims, [0, 1, 2], ties="pessimistic")
    r_o, t_o = retrieval_ranks(sims, [0, 1, 2], ties="optimistic")
    assert r_p.tolist() == [3, 3, 3] and t_p.tolist() == [3, 3, 3]
    assert r_o.tolist() == [1, 1, 1] and t_o.tolist() == [1, 1, 1]


def test_perfect_and_subset() -> None:
    cap_img = np.repeat(np.arange(4), 5)
    sims = (cap_img[None, :] == np.arange(4)[:, None]).astype(float)
    assert retrieval_metrics(sims, cap_img)["mR"] == 100.0
    sims[0] = -sims[0]  # image 0 now ranks its captions last
    sub = np.zeros(4, dtype=bool)
    sub[0] = True
    capsub = cap_img == 0
    m = retrieval_metrics(sims, cap_img, image_subset=sub, caption_subset=capsub)
    assert m["i2t_R@1"] == 0.0
    assert (
        retrieval_metrics(sims, cap_img, image_subset=~sub, caption_subset=~capsub)["mR"] == 100.0
    )


def test_rsicd_sized_evaluation_is_fast() -> None:
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(1000, 5000)).astype(np.float32)
    cap_img = np.repeat(np.arange(1000), 5)
    t = time.perf_counter()
    retrieval_metrics(sims, cap_img)
    assert time.perf_counter() - t < 5.0


@pytest.mark.parametrize(
    ("sims", "cap", "match"),
    [
        (np.zeros((2, 3)), [0, 1], "one image index per caption"),
        (np.zeros((2, 3)), [0, 1, 2], r"caption_image values must lie in \[0, 1\]"),
        (np.zeros((3, 3)), [0, 0, 1], "images \\[2\\] have none"),
        (np.zeros((0, 3)), [], "non-empty"),
        (np.full((1, 1), np.nan), [0], "NaN"),
    ],
)
def test_metrics_bad_input(sims: np.ndarray, cap: list[int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(sims, cap)


def test_metrics_bad_options() -> None:
    with pytest.raises(ValueError, match="ties"):
        retrieval_ranks(np.zeros((1, 1)), [0], ties="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(np.zeros((1, 1)), [0], ks=(0,))
    with pytest.raises(ValueError, match="image_subset"):
        retrieval_metrics(np.zeros((2, 2)), [0, 1], image_subset=np.array([1, 0]))
