"""Hugging Face Trainer integration on a tiny config-built BERT classifier (no downloads)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from ted_prune import RandomDynamic, TEDPruner  # noqa: E402


class _Toks(torch.utils.data.Dataset):
    def __init__(self, n=48, length=8, vocab=30, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(3, vocab, (n, length), generator=g)
        self.labels = (self.ids[:, 0] % 2).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones_like(self.ids[i]),
            "labels": self.labels[i],
        }


def _trainer(pruner, ds, tmp_path, callbacks=None, **extra):
    from ted_prune.hf import PrunedTrainer, WithIndex
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = BertForSequenceClassification(cfg)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=pruner.epochs,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
        **{"save_strategy": "no", **extra},
    )
    return PrunedTrainer(
        callbacks=callbacks,
        pruner=pruner,
        model=model,
        args=args,
        train_dataset=WithIndex(ds),
        data_collator=transformers.default_data_collator,
    )


def test_trainer_trains_on_ted_selection(tmp_path):
    ds = _Toks()
    p = TEDPruner(ds, epochs=4, keep=0.5, warmup=1, ramp=0, rescore_every=1)
    tr = _trainer(p, ds, tmp_path)
    tr.train()
    assert [int(r["selected"]) for r in p.log] == [48, 24, 24, 24]
    assert [int(r["trained"]) for r in p.log] == [48, 24, 24, 24]
    assert p.has_score.all() and p.budget()["scored"] > 0
    assert any("prune_trained" in r for r in tr.state.log_history)


def test_trainer_with_baseline(tmp_path):
    ds = _Toks(seed=1)
    p = RandomDynamic(ds, epochs=2, keep=0.5, warmup=0, ramp=0)
    _trainer(p, ds, tmp_path).train()
    assert [int(r["trained"]) for r in p.log] == [24, 24]


def test_trainer_rejects_epoch_mismatch(tmp_path):
    ds = _Toks()
    p = TEDPruner(ds, epochs=3)
    from ted_prune.hf import PrunedTrainer, WithIndex
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    args = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=2, report_to=[], use_cpu=True
    )
    with pytest.raises(ValueError, match="num_train_epochs"):
        PrunedTrainer(pruner=p, model=BertForSequenceClassification(cfg), args=args,
                      train_dataset=WithIndex(ds))  # fmt: skip
    args = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=3, max_steps=5, report_to=[], use_cpu=True
    )
    with pytest.raises(ValueError, match="max_steps"):
        PrunedTrainer(pruner=p, model=BertForSequenceClassification(cfg), args=args,
                      train_dataset=WithIndex(ds))  # fmt: skip


def test_lr_schedule_reaches_its_end_at_the_last_pruned_step(tmp_path):
    """Linear decay sized from the pruner's plan: LR hits 0 exactly at the last optimizer step,
    including the partial gradient-accumulation step that ends each pruned epoch."""
    ds = _Toks()
    # 48 samples / batch 8 = 6 batches -> 3 steps; 32 kept = 4 batches -> 2 steps
    p = TEDPruner(ds, epochs=4, keep=2 / 3, warmup=1, ramp=0, rescore_every=1)
    lrs = []

    class Record(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            lrs.append(tr.lr_scheduler.get_last_lr()[0])

    tr = _trainer(p, ds, tmp_path, callbacks=[Record()], gradient_accumulation_steps=2)
    assert tr.planned_optimizer_steps() == 3 + 2 + 2 + 2
    tr.train()
    assert tr.state.global_step == 9 == len(lrs)
    assert lrs[-1] == 0.0 and all(v > 0 for v in lrs[:-1])
    assert lrs == sorted(lrs, reverse=True)
    assert [int(r["trained"]) for r in p.log] == [48, 32, 32, 32]


def test_accumulation_that_would_straddle_epochs_is_refused(tmp_path):
    """24 kept samples = 3 batches of 8: with 2 accumulation steps the Trainer would carry the
    last batch's gradient into the next epoch, so the plan is refused."""
    ds = _Toks()
    p = TEDPruner(ds, epochs=4, keep=0.5, warmup=1, ramp=0)
    with pytest.raises(ValueError, match="gradient_accumulation_steps=2"):
        _trainer(p, ds, tmp_path, gradient_accumulation_steps=2)


def test_trainer_resume_reproduces_uninterrupted_run(tmp_path):
    ds = _Toks(seed=2)

    def make():
        return TEDPruner(ds, epochs=4, keep=0.5, warmup=1, ramp=1, rescore_every=1)

    p1 = make()
    t1 = _trainer(p1, ds, tmp_path / "a", save_strategy="epoch")
    t1.train()

    # interrupt after epoch 2: a fresh trainer resumes from the checkpoint written then
    import shutil

    step2 = int(p1.log[1]["global_step"])
    shutil.copytree(tmp_path / "a" / f"checkpoint-{step2}", tmp_path / "b" / f"checkpoint-{step2}")
    p3 = make()
    t3 = _trainer(p3, ds, tmp_path / "b", save_strategy="epoch")
    t3.train(resume_from_checkpoint=True)
    assert p3.log[:2] == p1.log[:2]  # restored from the checkpoint
    assert p3.epoch == 4 and t3.state.global_step == t1.state.global_step
    torch.testing.assert_close(p3.scores, p1.scores)
    assert [r["selected"] for r in p3.log] == [r["selected"] for r in p1.log]
    assert t3.lr_scheduler.get_last_lr() == t1.lr_scheduler.get_last_lr()
    for a, b in zip(t1.model.parameters(), t3.model.parameters()):
        torch.testing.assert_close(a, b)
    (tmp_path / "c" / "checkpoint-1").mkdir(parents=True)
    t4 = _trainer(make(), ds, tmp_path / "c")
    with pytest.raises(ValueError, match="ted_prune_pruner"):
        t4.train(resume_from_checkpoint=str(tmp_path / "c" / "checkpoint-1"))


class _Recording(RandomDynamic):
    """RandomDynamic that records the dataset indices of every training batch it observes."""

    def _observe(self, indices, logits, features, targets, losses):
        self.seen.setdefault(self.epoch, []).extend(indices.tolist())


def _recording(ds):
    p = _Recording(ds, epochs=4, keep=0.5, warmup=1, ramp=1, seed=7)
    p.seen = {}
    return p


def test_trainer_fit_and_plain_loop_iterate_the_same_selection(tmp_path):
    """One sampler object, three loops: the Trainer, maskloop.fit and a plain loop train the same
    samples in the same order every epoch."""
    from maskloop import IndexedDataset, fit
    from ted_prune import PrunerCallback
    from torch.utils.data import DataLoader

    ds = _Toks()
    hf = _recording(ds)
    _trainer(hf, ds, tmp_path).train()

    x = ds.ids.double()
    tensors = torch.utils.data.TensorDataset(x, ds.labels)
    in_fit = _recording(tensors)
    model = torch.nn.Sequential(torch.nn.Linear(8, 2)).double()
    fit(model, DataLoader(IndexedDataset(tensors), sampler=in_fit.sampler, batch_size=8),
        epochs=4, optimizer=torch.optim.SGD(model.parameters(), lr=0.01), progress=False,
        callbacks=[PrunerCallback(in_fit)])  # fmt: skip

    plain = _recording(ds)
    order = {}
    for e in range(4):
        order[e] = list(plain.sampler)
        plain.end_epoch()
    assert hf.seen == in_fit.seen == order
    assert [len(order[e]) for e in range(4)] == [48, 48, 24, 24]  # warm-up, ramp, pruned
