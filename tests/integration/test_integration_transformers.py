"""Transformer compositions: a SEVEN-pruned MiniLM as SSJDN's text encoder, and TED choosing the data
of a SEVEN fine-tuning run inside one Hugging Face `Trainer`."""

import warnings

import numpy as np
import pytest
import seven_prune
import ssjdn
import torch
import transformers
from maskloop import MaskedTraining, Selection, WeightMask, seed_everything
from seven_prune.data import collate_trim, load_movie_reviews, synthetic_sentiment, tokenize
from seven_prune.models import load_minilm_classifier, load_minilm_tokenizer, tiny_bert
from ted_prune import TEDPruner
from ted_prune.hf import PrunedTrainer, WithIndex


def _pruned_exactly(model: torch.nn.Module, mask: WeightMask) -> bool:
    params = dict(model.named_parameters())
    return all(torch.all(params[n].detach()[~m] == 0) for n, m in mask.items())


def _chance_mR(data: ssjdn.RetrievalData, draws: int = 20) -> float:
    """Mean mR of random similarity matrices with the data's caption/image structure."""
    g = torch.Generator().manual_seed(0)
    shape = (len(data), len(data.caption_image))
    return float(
        np.mean(
            [
                ssjdn.retrieval_metrics(torch.rand(shape, generator=g), data.caption_image)["mR"]
                for _ in range(draws)
            ]
        )
    )


def test_seven_pruned_minilm_is_ssjdn_text_encoder() -> None:
    """SEVEN_dyn prunes MiniLM's encoder Linears to 50% while it fine-tunes on Rotten Tomatoes (plain
    loop); the pruned encoder then serves as SSJDN's text branch, trained for retrieval with the mask
    held by maskloop, and retrieves far above chance."""
    seed_everything(0)
    tok = load_minilm_tokenizer()
    clf = load_minilm_classifier(seed=0)
    texts, labels = load_movie_reviews("rotten_tomatoes")
    idx = np.random.default_rng(0).permutation(len(texts))[:160]
    reviews = tokenize([texts[i] for i in idx], [labels[i] for i in idx], tok, max_len=32)
    loader = torch.utils.data.DataLoader(
        reviews, batch_size=16, shuffle=True, collate_fn=collate_trim
    )
    opt = torch.optim.AdamW(clf.parameters(), lr=5e-5)
    pruner = seven_prune.SevenPruner(clf, 0.5, window=8, optimizer=opt)
    clf.train()
    for batch in loader:  # 10 steps: the cubic schedule reaches the target at step 8
        clf(**batch).loss.backward()
        opt.step()
        pruner.step()
        opt.zero_grad(set_to_none=True)
    assert pruner.mask.sparsity == pytest.approx(0.5, abs=1e-3)
    assert _pruned_exactly(clf, pruner.mask)
    pruner.masked.remove()  # the classifier is done; the encoder moves on

    train = ssjdn.make_scenes(160, image_size=32, seed=0)
    test = ssjdn.make_scenes(50, image_size=32, seed=1)
    cfg = ssjdn.SSJDNConfig(
        text="transformer",
        embed_dim=64,
        proj_dim=16,
        small_channels=(8, 16, 24, 32),
        num_classes=max(2, len(train.class_names)),
    )
    model = ssjdn.SSJDN(cfg, ssjdn.TransformerTextEncoder(clf.bert, tok, out_dim=64, max_len=32))
    # the same mask, re-keyed from the classifier's names to the retrieval model's
    mask = WeightMask(
        {f"text.encoder.{n.removeprefix('bert.')}": m for n, m in pruner.mask.items()}
    )
    with MaskedTraining(model, mask):  # gradient hooks: Adam never moves a pruned weight
        hist = ssjdn.train_retrieval(
            model, train, epochs=3, batch_size=32, lr=1e-3, seed=0, progress=False
        )
    assert hist.loss[-1] < hist.loss[1]
    assert _pruned_exactly(model, mask)
    assert mask.sparsity == pytest.approx(0.5, abs=1e-3)
    metrics = ssjdn.evaluate_retrieval(model, test)
    chance = _chance_mR(test)
    assert metrics["mR"] > 1.5 * chance, (metrics, chance)  # measured 21.9 against 10.2 (3 epochs)


def test_ted_selects_data_for_seven_finetuning_in_hf_trainer(tmp_path) -> None:
    """One `Trainer.train()`: TED's per-epoch selection feeds the sampler (PrunedTrainer) while
    SEVEN_dyn prunes the encoder at every optimizer step (SevenCallback)."""
    seed_everything(0)
    train = synthetic_sentiment(480, seq_len=16, seed=0)
    test = synthetic_sentiment(300, seq_len=16, seed=1)
    model = tiny_bert(num_labels=2, seed=0)
    epochs, batch = 6, 16
    data_pruner = TEDPruner(
        train, epochs, keep=0.5, warmup=1, ramp=2, rescore_every=1, normalize=True, balance="class"
    )
    # steps actually taken follow TED's schedule: ceil(kept / batch) per epoch
    steps = [
        -(-Selection.kept_count(data_pruner.n, data_pruner.keep_ratio(e)) // batch)
        for e in range(epochs)
    ]
    weight_pruner = seven_prune.SevenPruner(model, 0.5, window=steps[0] + steps[1])
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch,
        learning_rate=2e-3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
    )
    trainer = PrunedTrainer(
        pruner=data_pruner,
        model=model,
        args=args,
        train_dataset=WithIndex(train),
        data_collator=transformers.default_data_collator,
        callbacks=[seven_prune.SevenCallback(weight_pruner)],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    # the only warning allowed is SEVEN's layer-collapse guard naming what it kept alive
    others = [w for w in caught if "would empty" not in str(w.message)]
    assert not others, [str(w.message) for w in others]
    assert all(bool(m.any()) for _, m in weight_pruner.mask.items()), "a tensor was emptied"

    # TED: every epoch trained exactly its scheduled selection, and less than full data overall
    assert [int(r["selected"]) for r in data_pruner.log] == [
        Selection.kept_count(data_pruner.n, data_pruner.keep_ratio(e)) for e in range(epochs)
    ]
    assert [int(r["trained"]) for r in data_pruner.log] == [
        int(r["selected"]) for r in data_pruner.log
    ]
    assert data_pruner.budget()["trained"] < 0.8
    # SEVEN: one update per optimizer step, target sparsity reached, pruned weights still zero
    assert weight_pruner.t == trainer.state.global_step == sum(steps)
    assert weight_pruner.mask.sparsity == pytest.approx(0.5, abs=1e-3)
    assert _pruned_exactly(model, weight_pruner.mask)
    # and the pruned model learned the task from the pruned data
    model.eval()
    with torch.no_grad():
        logits = model(
            input_ids=test.tensors["input_ids"], attention_mask=test.tensors["attention_mask"]
        ).logits
    acc = float((logits.argmax(-1) == test.tensors["labels"]).float().mean())
    assert acc > 0.75, acc
