"""Methods composed through maskloop: real (small) training runs with assertions on the outcome."""

import lnpt
import lrcnn
import pytest
import torch
from maskloop import (
    IndexedDataset,
    MaskedTraining,
    Selection,
    WeightMask,
    evaluate,
    fit,
    prunable_parameters,
    seed_everything,
)
from ted_prune import PrunerCallback, TEDPruner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def ce(outputs, targets):
    return nn.functional.cross_entropy(outputs, targets, reduction="none")


@pytest.fixture(scope="module")
def digits():
    return lnpt.load_digits_split(seed=0, image=True)


@pytest.fixture(scope="module")
def lnpt_cnn(digits):
    """A teacher trained with labels, and an LNPT mask (label-free) for a fresh student."""
    seed_everything(0)
    teacher = lnpt.SmallCNN(channels=(8, 16, 32))
    opt = torch.optim.Adam(teacher.parameters(), 1e-2)
    fit(teacher, digits.loader("teacher", 16, shuffle=True), epochs=8, optimizer=opt, loss_fn=ce,
        progress=False)  # fmt: skip
    student = lnpt.SmallCNN(channels=(8, 16, 32))
    init = {k: v.clone() for k, v in student.state_dict().items()}
    unlabeled = digits.loader("student", 64, labels=False)
    params = prunable_parameters(student, exclude=r"^fc\.")  # the classifier head stays dense
    mask = lnpt.prune(student, teacher, unlabeled, 0.8, params=params, max_batches=4)
    return init, mask


def test_lnpt_pruned_cnn_trains_with_ted_data_pruning(digits, lnpt_cnn) -> None:
    init, mask = lnpt_cnn
    seed_everything(1)
    student = lnpt.SmallCNN(channels=(8, 16, 32))
    student.load_state_dict(init)
    mask.apply_(student)
    dataset = TensorDataset(digits.student_x, digits.student_y)
    epochs = 16  # with 10 epochs of 64-sample batches the sparse student sat on the ln(10) plateau
    # for most of the run and passed by luck of the batch order (0.19-0.52 across orders)
    # hard top-k with class quotas: in this composition the package's default sampling with capped
    # loss weights reached 0.41 (top-k 0.60, spec reading + quotas 0.57; seed 1, 2026-12-01), a
    # finding recorded in the ted-prune docs, not something this composition test is about
    pruner = TEDPruner(dataset, epochs, keep=0.6, normalize=True, balance="class", selection="topk")
    opt = torch.optim.Adam(student.parameters(), 1e-2)
    cbs = [MaskedTraining(student, mask, opt), PrunerCallback(pruner)]
    loader = DataLoader(IndexedDataset(dataset), sampler=pruner.sampler, batch_size=16)
    fit(student, loader, epochs=epochs, optimizer=opt, loss_fn=ce,
        callbacks=cbs, progress=False)  # fmt: skip
    # the mask stayed exact
    for name, p in student.named_parameters():
        if name in mask:
            assert torch.all(p[~mask[name]] == 0)
    assert mask.sparsity == pytest.approx(0.8, abs=1e-3)
    # the selection schedule was followed: each epoch trained the scheduled count
    assert len(pruner.log) == epochs
    for e, rec in enumerate(pruner.log):
        assert rec["selected"] == Selection.kept_count(pruner.n, pruner.keep_ratio(e))
    assert pruner.budget()["trained"] < 1.0
    acc = evaluate(student, digits.loader("test", 128))["accuracy"]
    assert acc > 0.5, acc  # chance is 0.1


def test_lnpt_pruned_cnn_under_rowcentric_has_plain_gradients(digits, lnpt_cnn) -> None:
    init, mask = lnpt_cnn
    plain = lnpt.SmallCNN(channels=(8, 16, 32)).double()
    plain.load_state_dict(init)
    mask.apply_(plain)
    rowwise = lnpt.SmallCNN(channels=(8, 16, 32)).double()
    rowwise.load_state_dict(plain.state_dict())
    trunk = lrcnn.RowCentric(rowwise.features, rows=3)  # the conv trunk runs in 3 row strips

    def rc(inp):
        return rowwise.fc(rowwise.pool(trunk(inp)).flatten(1))

    x = digits.student_x[:16].double().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y = digits.student_y[:16]
    nn.functional.cross_entropy(plain(x), y).backward()
    nn.functional.cross_entropy(rc(x2), y).backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-10, atol=1e-12)
    for (name, a), b in zip(plain.named_parameters(), rowwise.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=name)
        if name in mask:  # pruned weights get exactly the plain (masked-input) gradient
            assert torch.equal(a.detach()[~mask[name]], b.detach()[~mask[name]])


def test_masks_cross_packages_through_safetensors(tmp_path, lnpt_cnn) -> None:
    """An LNPT mask saved to disk loads through maskloop and drives training in another package's
    model copy; a SEVEN mask round-trips the same way."""
    import seven_prune
    from transformers import BertConfig, BertForSequenceClassification

    _, mask = lnpt_cnn
    loaded = WeightMask.load(mask.save(tmp_path / "lnpt.safetensors"))
    assert loaded == mask
    model = lnpt.SmallCNN(channels=(8, 16, 32))
    loaded.apply_(model)
    assert sum(int((p == 0).sum()) for n, p in model.named_parameters() if n in loaded) >= (
        loaded.num_pruned
    )

    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16, num_labels=2)  # fmt: skip
    bert = BertForSequenceClassification(cfg)
    pruner = seven_prune.MagnitudePruner(bert, 0.5)
    pruner.prune_before_training([])
    smask = pruner.mask
    path = smask.save(tmp_path / "seven.safetensors")
    again = WeightMask.load(path)
    assert again == smask
    fresh = BertForSequenceClassification(cfg)
    again.apply_(fresh)
    for name in again.names:
        w = dict(fresh.named_parameters())[name]
        assert torch.all(w[~again[name]] == 0)
    assert set(again.names) <= set(prunable_parameters(fresh))


def test_indexed_dataset_feeds_ted_scores() -> None:
    """TED reads per-sample indices from maskloop's IndexedDataset inside fit."""
    seed_everything(0)
    x = torch.randn(120, 4)
    y = (x[:, 0] > 0).long()
    ds = TensorDataset(x, y)
    pruner = TEDPruner(ds, 4, keep=0.5)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), 0.1)
    loader = DataLoader(IndexedDataset(ds), sampler=pruner.sampler, batch_size=16)
    fit(model, loader, epochs=4, optimizer=opt, loss_fn=ce,
        callbacks=[PrunerCallback(pruner)], progress=False)  # fmt: skip
    assert [r["selected"] for r in pruner.log][-1] == Selection.kept_count(
        120, pruner.keep_ratio(3)
    )
