"""Per-layer kept counts and dead conv3 channels of the digits CNN's 95% masks at the benchmark's
test-protocol seeds (session 19's diagnostic of `allocation="mass"`, `rounds=30`, and of the later
`standardize=True` and `average="scores"`; session 20's check of `gap="norm"`, `score_norm="mean"` /
`"sum"` and 3 teacher checkpoints on top of the default; session 22's `allocation="synflow"` and
`path_term="synflow"`, beside SynFlow's own mask).

For each seed: the benchmark's teacher and init (`lnpt.bench`), the masks of SNIP, the default
LNPT score and the four readings, on the benchmark's 512 scoring inputs. Usage from the repository
root: `python packages/lnpt/scripts/mask_layers.py [SEEDS]` (default 1: seed 0); prints a table.
"""

from __future__ import annotations

import sys

import torch
from lnpt.anatomy import dead_units
from lnpt.bench import MODELS, BenchConfig, make_mask, train_teacher
from maskloop import seed_everything

OPTIONS = {
    "default": {},
    "mass": {"allocation": "mass"},
    "rounds30": {"rounds": 30},
    "standardize": {"standardize": True},
    "avg-scores": {"average": "scores"},
    "gap-norm": {"gap": "norm"},
    "layer-mean": {"score_norm": "mean"},
    "layer-sum": {"score_norm": "sum"},
    "synflow-alloc": {"allocation": "synflow"},
    "path-synflow": {"path_term": "synflow"},
}


def main(seeds: int = 1) -> None:
    torch.set_num_threads(2)
    cfg, spec = BenchConfig(models=("cnn",)), MODELS["cnn"]
    rows: dict[str, list[tuple[list[int], int]]] = {}
    for seed in range(seeds):
        data = spec.data(seed)
        seed_everything(seed)
        init = spec.build()
        teachers = train_teacher("cnn", data, cfg, seed, checkpoints=3)
        teacher = teachers[-1]
        masks = {"snip": make_mask("snip", init, teacher, data, 0.95, cfg, seed, spec)}
        masks["synflow"] = make_mask("synflow", init, teacher, data, 0.95, cfg, seed, spec)
        for name, opts in OPTIONS.items():
            masks[name] = make_mask(
                "lnpt", init, teacher, data, 0.95, cfg, seed, spec, lnpt_options=opts
            )
        masks["checkpoints-3"] = make_mask("lnpt", init, teachers, data, 0.95, cfg, seed, spec)
        for name, m in masks.items():
            kept = [int(m[n].sum()) for n in m.names]
            dead = dead_units(init, m, spec.input_shape)
            conv3 = [n for n in m.names if m[n].ndim == 4][-1]
            rows.setdefault(name, []).append((kept, dead[conv3][0]))
    names = [n for n in masks["snip"].names]
    print(f"tensors: {names}; sizes {[masks['snip'][n].numel() for n in names]}; seeds {seeds}")
    for name, vals in rows.items():
        kept = [sum(v[0][i] for v in vals) / len(vals) for i in range(len(names))]
        dead = sum(v[1] for v in vals) / len(vals)
        print(
            f"{name}: kept {' / '.join(f'{k:.0f}' for k in kept)}; dead conv3 channels {dead:.1f}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
