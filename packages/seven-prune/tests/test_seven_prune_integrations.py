"""The three ways to drive a pruner: maskloop.fit, a plain loop, and Hugging Face Trainer."""

import pytest
import torch
from maskloop import fit
from seven_prune import SevenPruner, TaylorPruner
from seven_prune.data import synthetic_sentiment
from seven_prune.models import tiny_bert
from torch.utils.data import DataLoader

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:accelerate.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:accelerate.*"),
]


def _loader(n: int = 64, batch_size: int = 8) -> DataLoader:
    return DataLoader(synthetic_sentiment(n, seq_len=10, seed=0), batch_size=batch_size)


def _plain(model, pruner, loader, opt, epochs=1):
    for _ in range(epochs):
        for batch in loader:
            opt.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            opt.step()
            pruner.step()


def test_fit_callback_equals_plain_loop() -> None:
    def ce(logits, y):
        return torch.nn.functional.cross_entropy(logits, y, reduction="none")

    loader = _loader()
    m1 = tiny_bert(seed=0)
    p1 = SevenPruner(m1, 0.7, start=1, window=6)
    o1 = torch.optim.AdamW(m1.parameters(), lr=1e-3, weight_decay=0.0)
    fit(m1, loader, epochs=1, optimizer=o1, loss_fn=ce, callbacks=[p1], progress=False)
    m2 = tiny_bert(seed=0)
    p2 = SevenPruner(m2, 0.7, start=1, window=6)
    o2 = torch.optim.AdamW(m2.parameters(), lr=1e-3, weight_decay=0.0)
    _plain(m2, p2, loader, o2)
    assert p1.t == p2.t == len(loader)
    assert p1.mask == p2.mask
    assert p1.achieved_sparsity > 0.6


def test_fit_runs_pre_pruning_at_fit_start() -> None:
    def ce(logits, y):
        return torch.nn.functional.cross_entropy(logits, y, reduction="none")

    model = tiny_bert(seed=1)
    pruner = SevenPruner(model, 0.6, mode="pre", window=3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fit(model, _loader(), epochs=1, optimizer=opt, loss_fn=ce, callbacks=[pruner], progress=False)
    assert pruner.pruned_before_training
    assert pruner.mask.num_pruned == round(0.6 * pruner.numel)
    for n, p in pruner.params.items():
        assert bool((p.detach()[~pruner.mask[n]] == 0).all())


def _trainer(model, dataset, pruner, opt, tmp_path):
    from seven_prune import SevenCallback
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=1,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        train_sampling_strategy="sequential",
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        callbacks=[SevenCallback(pruner)],
        optimizers=(opt, None),
    )


@pytest.mark.parametrize("mode", ["dyn", "pre"])
def test_hf_trainer_callback_equals_plain_loop(tmp_path, mode) -> None:
    pytest.importorskip("accelerate")
    data = synthetic_sentiment(64, seq_len=10, seed=0)
    kw = {"start": 1, "window": 6} if mode == "dyn" else {"window": 3}
    m1 = tiny_bert(seed=2)
    keys = list(m1.state_dict())
    p1 = SevenPruner(m1, 0.7, mode, **kw)
    o1 = torch.optim.AdamW(m1.parameters(), lr=1e-3, weight_decay=0.0)
    _trainer(m1, data, p1, o1, tmp_path).train()
    m2 = tiny_bert(seed=2)
    p2 = SevenPruner(m2, 0.7, mode, **kw)
    o2 = torch.optim.AdamW(m2.parameters(), lr=1e-3, weight_decay=0.0)
    loader = DataLoader(data, batch_size=8)
    if mode == "pre":
        p2.prune_before_training(loader)
    _plain(m2, p2, loader, o2)
    assert p1.t == p2.t == 8
    assert p1.mask == p2.mask
    assert list(m1.state_dict()) == keys
    for n, p in p1.params.items():
        assert bool((p.detach()[~p1.mask[n]] == 0).all())


def test_callback_rejects_non_pruner() -> None:
    from seven_prune import SevenCallback

    with pytest.raises(TypeError, match="pruner must be"):
        SevenCallback("seven")


def test_optimizer_hook_keeps_zeros_between_steps() -> None:
    model = tiny_bert(seed=3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    pruner = TaylorPruner(model, 0.5, window=2, optimizer=opt)
    loader = _loader(32)
    _plain(model, pruner, loader, opt)
    # further optimizer steps without pruner.step(): the optimizer hook still re-applies the mask
    for batch in loader:
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    for n, p in pruner.params.items():
        assert bool((p.detach()[~pruner.mask[n]] == 0).all())


def test_maskloop_checkpoint_resumes_the_pruner(tmp_path) -> None:
    from maskloop import Checkpoint

    def ce(logits, y):
        return torch.nn.functional.cross_entropy(logits, y, reduction="none")

    def run(epochs, ckpt_dir=None):
        model = tiny_bert(seed=4)
        pruner = SevenPruner(model, 0.7, start=2, window=12, delta_t=2)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        cbs = [pruner] + ([Checkpoint(ckpt_dir)] if ckpt_dir else [])
        fit(
            model,
            _loader(),
            epochs=epochs,
            optimizer=opt,
            loss_fn=ce,
            callbacks=cbs,
            progress=False,
        )
        return pruner

    full = run(2)
    run(1, tmp_path / "ck")
    resumed = run(2, tmp_path / "ck")
    assert resumed.t == full.t == 16
    assert resumed.mask == full.mask
    for a, b in zip(resumed.state["S"], full.state["S"]):
        torch.testing.assert_close(a, b)
