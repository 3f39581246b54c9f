"""Under torchrun (2 gloo ranks): LNPT scores on sharded unlabeled data agree, and label-free
training under `maskloop.fit` (DDP) ends with identical weights and an exact mask on both ranks."""

import textwrap

import pytest
import torch
from maskloop.testing import run_torchrun

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader
    from maskloop import MaskedTraining, fit, seed_everything
    import lnpt

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    seed_everything(0)
    x = torch.randn(64, 8)
    teacher = lnpt.MLP(8, (16, 10), 3)  # other width: a learned linear adaptor
    student = lnpt.MLP(8, (16, 12), 3)
    shard = DataLoader(lnpt.InputsOnly(x[rank::world]), batch_size=16)
    local = lnpt.score(student, teacher, shard, sync=False)
    synced = lnpt.score(student, teacher, shard)
    # the union of the shards' batches, scored in one process
    batches = [x[r::world][i : i + 16] for r in range(world) for i in (0, 16)]
    union = lnpt.score(student, teacher, batches, sync=False)
    mask = lnpt.prune(student, teacher, shard, 0.7, rounds=2)
    mask.apply_(student)

    gap = lnpt.LearningGap(student, teacher).setup(x[rank::world])
    adaptor0 = gap.adaptor.map.weight.detach().clone()
    params = list(student.parameters()) + list(gap.adaptor.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    data = DataLoader(lnpt.InputsOnly(x), batch_size=8, shuffle=True)
    hist = fit(student, data, epochs=3, optimizer=opt, objective=lnpt.LabelFreeObjective(gap),
               callbacks=[MaskedTraining(student, mask, opt), lnpt.AdaptorSync(gap)],
               progress=False)
    torch.save({"local": local, "synced": synced, "union": union, "mask": mask.state_dict(),
                "weights": {k: v.clone() for k, v in student.state_dict().items()},
                "adaptor0": adaptor0, "adaptor": gap.adaptor.map.weight.detach().clone(),
                "samples": hist["train_samples"], "loss": hist["train_loss"]},
               sys.argv[1] + f"/rank{rank}.pt")
    # run_torchrun's launcher waits for both ranks and leaves without tearing the group down
    """
)


@pytest.mark.distributed
def test_lnpt_ranks_agree_on_mask_and_weights(tmp_path) -> None:
    a, b = run_torchrun(SCRIPT, tmp_path)
    # each rank scored its own shard: alone the scores differ, all-reduced they agree and equal
    # the scores of the union of the shards
    assert any(not torch.allclose(a["local"][n], b["local"][n]) for n in a["local"])
    for n in a["synced"]:
        assert torch.equal(a["synced"][n], b["synced"][n])
        torch.testing.assert_close(a["synced"][n], a["union"][n], rtol=1e-4, atol=1e-7)
    assert a["mask"].keys() == b["mask"].keys()
    for n in a["mask"]:
        assert torch.equal(a["mask"][n], b["mask"][n])
    pruned = sum(int((~m).sum()) for m in a["mask"].values())
    total = sum(m.numel() for m in a["mask"].values())
    assert pruned == round(0.7 * total)
    # DDP training: the weights moved, are identical on both ranks, and pruned entries are zero
    torch.testing.assert_close(a["adaptor0"], b["adaptor0"], rtol=0, atol=0)
    assert not torch.equal(a["adaptor"], a["adaptor0"])  # the adaptor was trained
    torch.testing.assert_close(a["adaptor"], b["adaptor"], rtol=0, atol=0)
    for k in a["weights"]:
        torch.testing.assert_close(a["weights"][k], b["weights"][k], rtol=0, atol=0)
    for n, m in a["mask"].items():
        assert (a["weights"][n][~m] == 0).all() and (a["weights"][n][m] != 0).all()
    assert a["samples"] == [32.0, 32.0, 32.0]  # each rank trained on its half
    assert a["loss"] != b["loss"]  # on different data
