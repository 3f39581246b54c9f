"""The global selection on a GPU equals the CPU's, entry for entry (a check for a lent GPU).

`select_flat` takes different paths by device (numpy's bracketed selection on a CPU; a device sort
for the threshold, one cumulative sum for the per-tensor counts on a GPU). This feeds the same
float32 score buffers (ties, a run of zeros for pruned entries, tensors small enough for the guard
to lift) to both and compares the keep-vectors, at several keep counts, with and without the guard.
Usage: `python select_cpu_cuda.py` (exits 1 on any difference; needs CUDA).
"""

from __future__ import annotations

import sys
import warnings

import torch
from seven_prune.pruning import select_flat


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    g = torch.Generator().manual_seed(0)
    sizes = [384 * 384] * 12 + [1536 * 384] * 6 + [64, 1000] + [200_000]
    names = [f"t{i}" for i in range(len(sizes))]
    n = sum(sizes)
    bad = 0
    for case in range(6):
        flat = torch.round(torch.rand(n, generator=g) ** 3 * 400) / 400  # ties
        flat[-201_064:-200_000] *= 1e-6  # the small tensors: the guard lifts them
        alive = torch.rand(n, generator=g) > 0.3 if case % 2 else None
        if alive is not None:
            flat[~alive] = 0.0  # a gradual pruner's cut: pruned entries hold 0
        n_alive = n if alive is None else int(alive.sum())
        for frac in (0.5, 0.2, 0.05):
            k = int(n_alive * frac)
            for guard in (0.0, 0.01):
                kw = {"min_density": guard, "dead_zero": alive is not None}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cpu = select_flat(flat.clone(), sizes, names, k, alive, **kw)
                    gpu = select_flat(
                        flat.cuda(), sizes, names, k, None if alive is None else alive.cuda(), **kw
                    ).cpu()
                diff = int((cpu != gpu).sum())
                bad += diff > 0
                print(f"case {case} keep {k} guard {guard}: kept {int(cpu.sum())}, differ {diff}")
    print("all equal" if bad == 0 else f"{bad} selections differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
