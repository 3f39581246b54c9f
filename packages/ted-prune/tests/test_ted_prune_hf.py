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


def _trainer(pruner, ds, tmp_path):
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
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
    )
    return PrunedTrainer(
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
