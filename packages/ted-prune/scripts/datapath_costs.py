"""What the data selection path of the MNIST-1D benchmark costs, per batch and per epoch.

Usage (one thread; time it under the heavy-job lock)::

    python packages/ted-prune/scripts/datapath_costs.py

Per batch: the benchmark loader's work (`as_tensor` of the 128 sampled indices, `x[i]`, `y[i]`;
`index_select` for comparison). Per epoch: building the `Selection` of a pruned epoch (f = 0.7),
handing it to the sampler, drawing the shuffled order and cutting it into index lists, against the
same for full data; and `Selection.mask()` (which TED's `end_epoch` builds once).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from maskloop import Selection, SelectionSampler
from ted_prune.bench_mnist1d import _splits
from torch.utils.data import BatchSampler


def _us(fn: Callable[[], object], reps: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1e6


def main() -> None:
    torch.set_num_threads(1)
    train, _, _ = _splits("clean", 25000, 0)
    x, y = train.tensors
    n = len(y)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    lst = perm[:128].tolist()
    i = torch.as_tensor(lst)
    print(f"x {tuple(x.shape)} {x.dtype}, y {y.dtype}")
    print(
        f"as_tensor(list of 128): {_us(lambda: torch.as_tensor(lst, dtype=torch.long), 2000):.1f} us"
    )
    print(f"x[i]: {_us(lambda: x[i], 2000):.1f} us; "
          f"x.index_select(0, i): {_us(lambda: x.index_select(0, i), 2000):.1f} us")  # fmt: skip
    print(f"y[i]: {_us(lambda: y[i], 2000):.1f} us; "
          f"y.index_select(0, i): {_us(lambda: y.index_select(0, i), 2000):.1f} us")  # fmt: skip
    kept = torch.sort(perm[: int(0.7 * n)]).values
    s = SelectionSampler.full(n, generator=torch.Generator(), seed=0)

    def epoch(sel_of: Callable[[], Selection]) -> Callable[[], list]:
        def run() -> list:
            s.set_selection(sel_of())
            assert s.generator is not None
            s.generator.manual_seed(3)
            return list(BatchSampler(s, 128, False))

        return run

    full = Selection.full(n)
    print(f"per epoch, f = 0.7 (Selection, set_selection, shuffled order, index lists): "
          f"{_us(epoch(lambda: Selection(kept, n)), 50):.0f} us")  # fmt: skip
    print(f"per epoch, full data (set_selection, shuffled order, index lists): "
          f"{_us(epoch(lambda: full), 50):.0f} us")  # fmt: skip
    print(f"Selection.mask(): {_us(lambda: Selection(kept, n).mask(), 200):.0f} us")


if __name__ == "__main__":
    main()
