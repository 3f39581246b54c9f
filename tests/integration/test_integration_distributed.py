"""TED + LNPT under torchrun: two gloo processes on the CPU agree on the mask, on every selection, and
end with identical weights."""

import textwrap

import pytest
import torch
from maskloop import WeightMask
from maskloop.testing import run_torchrun

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    import torch.distributed as dist
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler
    import lnpt
    from maskloop import (Callback, IndexedDataset, MaskedTraining, evaluate, fit,
                          prunable_parameters, seed_everything)
    from ted_prune import PrunerCallback, TEDPruner

    out = sys.argv[1]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ce = lambda o, t: nn.functional.cross_entropy(o, t, reduction="none")
    d = lnpt.load_digits_split(seed=0)

    # a teacher trained with labels (DDP: each rank sees its shard, gradients are averaged)
    seed_everything(0)
    teacher = lnpt.MLP(hidden=(64, 32))
    fit(teacher, d.loader("teacher", 32, shuffle=True), epochs=10, loss_fn=ce, progress=False,
        optimizer=torch.optim.Adam(teacher.parameters(), 1e-2))

    # LNPT scores on each rank's own shard of unlabeled inputs, all-reduced into one mask
    seed_everything(1)
    student = lnpt.MLP(hidden=(64, 32))
    inputs = lnpt.InputsOnly(d.student_x)
    shard = DataLoader(inputs, batch_size=32, sampler=DistributedSampler(inputs, shuffle=False))
    params = prunable_parameters(student, exclude=r"^4\\.")  # the head stays dense
    mask = lnpt.prune(student, teacher, shard, 0.8, params=params)
    mask.apply_(student)

    # TED data pruning + masked training in one fit
    ds = TensorDataset(d.student_x, d.student_y)
    epochs = 6
    ted = TEDPruner(ds, epochs, keep=0.5, warmup=1, ramp=2, rescore_every=1,
                     normalize=True, balance="class")
    selections = []

    class Record(Callback):
        order = 50

        def on_epoch_start(self, state):
            selections.append(ted.select(state.epoch).mask())

    opt = torch.optim.Adam(student.parameters(), 5e-3)
    loader = DataLoader(IndexedDataset(ds), sampler=ted.sampler, batch_size=32)
    fit(student, loader, epochs=epochs, optimizer=opt, loss_fn=ce,
        callbacks=[MaskedTraining(student, mask, opt), PrunerCallback(ted),
                   Record()], progress=False)
    acc = evaluate(student, d.loader("test", 128))["accuracy"]
    mask.save(f"{out}/mask{rank}.safetensors")
    torch.save({"selections": torch.stack(selections),
                "scheduled": torch.tensor([r["selected"] for r in ted.log]),
                "weights": {n: p.detach() for n, p in student.named_parameters()},
                "accuracy": torch.tensor(acc)}, f"{out}/rank{rank}.pt")
    # run_torchrun's launcher waits for both ranks and leaves without tearing the group down
    """
)


@pytest.mark.distributed
def test_ted_and_lnpt_under_torchrun_ranks_agree(tmp_path) -> None:
    ranks = run_torchrun(SCRIPT, tmp_path)
    masks = [WeightMask.load(tmp_path / f"mask{r}.safetensors") for r in (0, 1)]
    # one mask from two shards of scoring data, at the exact sparsity
    assert masks[0] == masks[1]
    assert masks[0].sparsity == pytest.approx(0.8, abs=1e-3)
    assert not any(n.startswith("4.") for n in masks[0].names)
    # the same selection every epoch, of the scheduled size (a full first epoch, then pruned)
    a, b = ranks
    assert torch.equal(a["selections"], b["selections"])
    assert a["selections"].sum(1).tolist() == a["scheduled"].tolist()
    assert a["selections"][0].all() and a["selections"].sum(1)[-1] < len(a["selections"][0])
    # identical weights, pruned entries still zero, and a model that learned
    for name, w in a["weights"].items():
        assert torch.equal(w, b["weights"][name]), name
        if name in masks[0]:
            assert torch.all(w[~masks[0][name]] == 0), name
    assert float(a["accuracy"]) > 0.6, float(a["accuracy"])
