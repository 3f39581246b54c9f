"""Session 32: why the label-free students of rule s31 stop at ~96 % training accuracy.

Used seeds only (rule s31's 14-18; no fresh seed, no test part is read). Two parts, each under
`flock /tmp/heavy.lock nice -n 5` from the repository root:

- `python packages/lnpt/scripts/label_free_diagnosis.py teachers`: each seed's teacher of rule s31
  (358 digits of the teacher's half, the benchmark's recipe) read on its own training digits, on
  the student's half (the 719 the student trains on label-free; labels read for this diagnostic
  only) and on the 360 validation digits. Cheap (a teacher trains in seconds).
- `python packages/lnpt/scripts/label_free_diagnosis.py student --seeds 14`: the rule's
  `lnpt+label-free` student of that seed retrained exactly as its cached unit (the final
  validation accuracy must equal the cached one: printed side by side) with copies at epochs
  30, 60, 120, 240 and 480, each read for: accuracy on the student's half and on validation,
  agreement of its argmax with the teacher's there, on the training digits the teacher gets
  wrong whether the student follows the teacher's label or the true one, and the objective (the
  mean tau^2 KL to the teacher at tau = 4) on the student's half.

Writes `docs/benchmarks/lnpt_s32_diagnosis/{teachers,student-<seed>}.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import validation_at_test_sizes as s31  # noqa: E402

OUT = Path("docs/benchmarks/lnpt_s32_diagnosis")
AT = (30, 60, 120, 240)
CONF = (0.5, 0.7, 0.9, 0.99)


@torch.no_grad()
def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)])


def setup(seed: int):  # noqa: ANN201 - a tuple of the check's objects
    """Rule s31's objects for one seed, built in `student_lr._check_one`'s order."""
    from lnpt.bench import MODELS, make_mask, teacher_checkpoints, train_teacher
    from maskloop import seed_everything

    sc = s31.config(("lnpt+label-free",))
    cfg = s31.LONG.config(sc.bench, "cnn")
    spec = MODELS["cnn"]
    full = spec.data(seed)
    data = full.validation(sc.validation_fraction, seed, reading=sc.validation_split)
    seed_everything(seed)
    init = spec.build()
    k = teacher_checkpoints(cfg)
    snaps = train_teacher("cnn", data, cfg, seed, checkpoints=k)
    return sc, cfg, spec, data, init, snaps, k, make_mask


def acc(lg: torch.Tensor, y: torch.Tensor) -> float:
    return float((lg.argmax(-1) == y).double().mean())


def teachers(seeds: list[int]) -> dict[str, object]:
    rows = {}
    for s in seeds:
        _, _, _, data, _, snaps, _, _ = setup(s)
        t = snaps[-1]
        lt = logits(t, data.student_x)
        conf = F.softmax(lt, -1).amax(-1)  # the teacher's top probability at temperature 1
        wrong = lt.argmax(-1) != data.student_y
        second = lt.topk(2, -1).indices[:, 1] == data.student_y
        rows[str(s)] = {
            "own training digits (358)": acc(logits(t, data.teacher_x), data.teacher_y),
            "student's half (719)": acc(lt, data.student_y),
            "validation (360)": acc(logits(t, data.test_x), data.test_y),
            "teacher-wrong digits of the student's half": int(wrong.sum()),
            "of those, true label is the teacher's 2nd choice": int(second[wrong].sum()),
            "below confidence c, wrong / right": {
                str(c): [int((conf[wrong] < c).sum()), int((conf[~wrong] < c).sum())] for c in CONF
            },
        }
        print(s, rows[str(s)], flush=True)
    doc = {"what": "rule s31's teachers (358 digits), accuracy", "seeds": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "teachers.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def student(seed: int) -> dict[str, object]:
    from lnpt.bench import _Snapshots
    from lnpt.student_lr import _train

    sc, cfg, spec, data, init, snaps, k, make_mask = setup(seed)
    teacher = snaps[-1]
    guide = snaps if k > 1 else teacher
    mask = make_mask("lnpt", init, guide, data, sc.sparsity, cfg, seed, spec)
    copies = _Snapshots(AT)
    final = _train("lnpt+label-free", init, teacher, data, mask, cfg, "cnn", seed, [copies])
    tau = cfg.temperature
    lt_tr, lt_va = logits(teacher, data.student_x), logits(teacher, data.test_x)
    wrong = lt_tr.argmax(-1) != data.student_y
    rows = []
    for e, m in zip([*AT, 480], [*copies.copies, final]):
        ls_tr, ls_va = logits(m, data.student_x), logits(m, data.test_x)
        p_s = ls_tr.argmax(-1)
        log_pt = F.log_softmax(lt_tr / tau, -1)
        kl = (log_pt.exp() * (log_pt - F.log_softmax(ls_tr / tau, -1))).sum(-1) * tau**2
        rows.append({
            "epoch": e,
            "train acc (719)": acc(ls_tr, data.student_y),
            "val acc (360)": acc(ls_va, data.test_y),
            "agreement with teacher, train": float((p_s == lt_tr.argmax(-1)).double().mean()),
            "agreement with teacher, val": float(
                (ls_va.argmax(-1) == lt_va.argmax(-1)).double().mean()
            ),
            "teacher-wrong train digits": int(wrong.sum()),
            "of those, student = teacher's label": int((p_s[wrong] == lt_tr.argmax(-1)[wrong]).sum()),
            "of those, student = true label": int((p_s[wrong] == data.student_y[wrong]).sum()),
            "student wrong where teacher right": int(
                ((p_s != data.student_y) & ~wrong).sum()
            ),
            "objective tau^2 KL (train mean)": float(kl.mean()),
        })  # fmt: skip
        print(rows[-1], flush=True)
    cached = s31.units(s31.RUN, seed).get(f"{s31.LONG.key}/lnpt+label-free", {})
    doc = {
        "seed": seed,
        "teacher": {
            "student's half (719)": acc(lt_tr, data.student_y),
            "validation (360)": acc(lt_va, data.test_y),
        },
        "cached unit val acc (rule s31)": cached.get("val_accuracy"),
        "cached unit train acc (rule s31)": cached.get("train_accuracy"),
        "epochs": rows,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"student-{seed}.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "epochs"}), flush=True)
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("teachers", "student"))
    p.add_argument("--seeds", nargs="+", type=int, default=s31.SEEDS)
    args = p.parse_args(argv)
    if any(s not in s31.SEEDS for s in args.seeds):
        p.error(f"used seeds only: {s31.SEEDS}")
    torch.set_num_threads(2)
    if args.mode == "teachers":
        teachers(args.seeds)
    else:
        for s in args.seeds:
            student(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
