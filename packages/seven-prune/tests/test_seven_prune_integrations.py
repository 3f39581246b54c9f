"""The three ways to drive a pruner: maskloop.fit, a plain loop, and Hugging Face Trainer."""

import pytest
import torch
from maskloop import Callback, LoopState, fit
from seven_prune import SevenPruner, TaylorPruner
from seven_prune.data import synthetic_sentiment
from seven_prune.models import tiny_bert
from torch.utils.data import DataLoader

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:accelerate.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:accelerate.*"),
]


def _assert_hooked_equals_unhooked(runs: dict) -> None:
    """`runs[hooked] = (model, pruner, optimizer)` after 8 steps: the hooked run's weights (float64),
    mask and scores equal the unhooked run's exactly; unhooked, some pruned weight had momentum (the
    re-zeroing did work); hooked, every pruned weight and its first moment is exactly 0."""
    (m0, p0, o0), (m1, p1, o1) = runs[False], runs[True]
    assert p0.t == p1.t == 8 and 0.6 < p1.achieved_sparsity <= 0.7
    assert p0.mask == p1.mask
    for (name, a), b in zip(m0.named_parameters(), m1.parameters()):
        assert a.dtype == torch.float64
        assert torch.equal(a, b), name
    for s0, s1 in zip(p0.state["S"], p1.state["S"]):
        assert torch.equal(s0, s1)
    moved = [o0.state[p]["exp_avg"][~p0.mask[n]] for n, p in p0.params.items()]
    assert any(bool((m != 0).any()) for m in moved)  # unhooked: pruned weights had momentum
    for n, p in p1.params.items():
        assert bool((o1.state[p]["exp_avg"][~p1.mask[n]] == 0).all()), n
        assert bool((p.detach()[~p1.mask[n]] == 0).all()), n


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


def _sequential_trainer():
    """`Trainer`, made to draw training batches in order on every supported transformers.

    transformers >= 5 has `TrainingArguments(train_sampling_strategy="sequential")`; older
    releases (down to seven-prune's lower bound, 4.42) reject that argument, so there the
    Trainer's own sampler hook is overridden to the same `SequentialSampler`.
    """
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    if _has_sampling_strategy():
        return Trainer

    class SequentialTrainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    return SequentialTrainer


def _has_sampling_strategy() -> bool:
    import dataclasses

    from transformers import TrainingArguments

    return "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}


def _hf_args(out_dir, **overrides):
    """TrainingArguments for tiny CPU runs: sequential batches of 8, no logging, no reporting."""
    from transformers import TrainingArguments

    kw = {
        "output_dir": str(out_dir),
        "per_device_train_batch_size": 8,
        "num_train_epochs": 1,
        "learning_rate": 1e-3,
        "use_cpu": True,
        "report_to": "none",
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    if _has_sampling_strategy():
        kw["train_sampling_strategy"] = "sequential"
    return TrainingArguments(**(kw | overrides))


def _trainer(model, dataset, pruner, opt, tmp_path):
    from seven_prune import SevenCallback

    Trainer = _sequential_trainer()

    args = _hf_args(tmp_path, lr_scheduler_type="constant", max_grad_norm=0.0)
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


def _ckpt_trainer(out_dir, pruner, model, data, extra_callbacks=()):
    from seven_prune import SevenCallback

    Trainer = _sequential_trainer()

    args = _hf_args(out_dir, num_train_epochs=2, save_strategy="steps", save_steps=3, seed=0)
    return Trainer(
        model=model,
        args=args,
        train_dataset=data,
        callbacks=[SevenCallback(pruner), *extra_callbacks],
    )


class _StopAt:
    """Interrupt training after optimizer step `step` (the checkpoint of that step is saved)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


@pytest.mark.parametrize("mode", ["dyn", "pre"])
def test_hf_trainer_resume_from_checkpoint_restores_the_pruner(tmp_path, mode) -> None:
    """Interrupted at checkpoint-6 and resumed == uninterrupted: same mask, scores, moments, step."""
    pytest.importorskip("accelerate")
    from seven_prune.hf import PRUNER_STATE_NAME

    data = synthetic_sentiment(64, seq_len=10, seed=0)  # 8 steps an epoch, 16 in all
    kw = {"start": 2, "window": 12, "delta_t": 2} if mode == "dyn" else {"window": 3}

    def parts():
        model = tiny_bert(seed=5)
        return model, SevenPruner(model, 0.7, mode, **kw)

    m_full, p_full = parts()
    _ckpt_trainer(tmp_path / "full", p_full, m_full, data).train()

    m_cut, p_cut = parts()
    _ckpt_trainer(tmp_path / "cut", p_cut, m_cut, data, [_StopAt(6)]).train()
    assert p_cut.t == 6 and not (tmp_path / "cut" / "checkpoint-9").exists()
    saved = torch.load(
        tmp_path / "cut" / "checkpoint-6" / PRUNER_STATE_NAME, map_location="cpu", weights_only=True
    )
    assert saved["global_step"] == 6 and saved["pruner"]["t"] == 6

    m_res, p_res = parts()  # a fresh process: new model and pruner
    trainer = _ckpt_trainer(tmp_path / "cut", p_res, m_res, data)
    trainer.train(resume_from_checkpoint=True)
    cb = next(c for c in trainer.callback_handler.callbacks if hasattr(c, "restored_from"))
    assert cb.restored_from == tmp_path / "cut" / "checkpoint-6" / PRUNER_STATE_NAME
    assert p_res.t == p_full.t == 16
    assert p_res.mask == p_full.mask
    assert p_res.achieved_sparsity > 0.69
    assert set(p_res.state) == set(p_full.state) == {"m", "v", "S"}
    for key in p_full.state:
        for a, b in zip(p_res.state[key], p_full.state[key]):
            torch.testing.assert_close(a, b)
    for (n, a), b in zip(m_res.named_parameters(), m_full.parameters()):
        torch.testing.assert_close(a, b, msg=n)


def test_hf_trainer_resume_without_pruner_state_is_an_error(tmp_path) -> None:
    pytest.importorskip("accelerate")
    from seven_prune import SevenCallback

    Trainer = _sequential_trainer()

    data = synthetic_sentiment(32, seq_len=10, seed=0)
    model = tiny_bert(seed=6)
    args = _hf_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    Trainer(model=model, args=args, train_dataset=data).train()  # dense, no pruner state saved
    args.max_steps = 4
    pruner = SevenPruner(model, 0.5, start=0, window=2, final_exact=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[SevenCallback(pruner)])
    with pytest.raises(RuntimeError, match="no checkpoint holds the pruner state"):
        trainer.train(resume_from_checkpoint=True)
    fresh = Trainer(
        model=model,
        args=args,
        train_dataset=data,
        callbacks=[SevenCallback(pruner, resume_from_checkpoint=False)],
    )
    fresh.train(resume_from_checkpoint=True)  # start the pruner afresh on purpose
    assert pruner.t == 2 and pruner.achieved_sparsity == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(TypeError, match="resume_from_checkpoint must be"):
        SevenCallback(pruner, resume_from_checkpoint=3)


class _StepsOnly(Callback):
    """Calls `pruner.step()` after each optimizer step and nothing else: `fit` never hands the
    pruner its optimizer, so the pruner re-zeroes the pruned weights at every step."""

    def __init__(self, pruner: SevenPruner) -> None:
        self.pruner = pruner

    def on_step_end(self, state: LoopState) -> None:
        self.pruner.step()


@pytest.mark.parametrize(
    ("opt_cls", "kw"),
    [
        (torch.optim.Adam, {"weight_decay": 0.1}),
        (torch.optim.AdamW, {"weight_decay": 0.1}),
        (torch.optim.AdamW, {"weight_decay": 0.0, "amsgrad": True}),
    ],
)
def test_hooking_the_fit_optimizer_skips_re_zeroing_exactly_in_float64(opt_cls, kw) -> None:
    """As a `fit` callback the pruner hooks the loop's optimizer (`on_fit_start`) and skips its
    per-step re-zeroing pass; the weights, masks and scores after several steps and cuts are
    exactly those of the re-zeroing path (float64, Adam's L2 decay and AdamW's decoupled decay).
    The re-zeroing was not idle there: the unhooked optimizer's first moments of pruned weights
    are non-zero, so it did move them between the re-zeroings."""

    def ce(logits, y):
        return torch.nn.functional.cross_entropy(logits, y, reduction="none")

    loader = _loader(n=48, batch_size=6)  # 8 steps: updates k = 0..6, cuts at k = 1, 3, 5, 6
    runs = {}
    for hooked in (False, True):
        torch.manual_seed(0)
        model = tiny_bert(seed=2).double()
        pr = SevenPruner(model, 0.7, start=0, window=8, delta_t=2)
        opt = opt_cls(model.parameters(), lr=1e-2, **kw)
        cbs = [pr] if hooked else [_StepsOnly(pr)]
        fit(model, loader, epochs=1, optimizer=opt, loss_fn=ce, callbacks=cbs, progress=False)
        assert pr.masked.holds_zeros is hooked
        runs[hooked] = (model, pr, opt)
    _assert_hooked_equals_unhooked(runs)


def test_fused_update_honours_the_optimizer_hook_exactly_in_float64(
    monkeypatch: pytest.MonkeyPatch,
    two_linear_encoder: type[torch.nn.Module],
) -> None:
    """`fused=True` with a hooked optimizer (`optimizer=`) skips the compiled re-zeroing of the
    pruned weights, as the eager update does: weights, masks and scores after 8 steps and 4 cuts
    are exactly those of the unhooked fused run (float64 weights, AdamW with decoupled decay 0.1).
    That equality holds whether or not the kernel re-zeroes (zeros stay zeros), so the kernel
    itself is checked too: told not to re-zero, it leaves non-zero pruned weights as they are,
    bit for bit, and m, v, S equal those of the re-zeroing call."""
    from seven_prune import seven

    torch._dynamo.reset()
    monkeypatch.setattr(seven, "_KERNEL", None)
    gen = torch.Generator().manual_seed(3)
    xs = torch.randn(8, 6, 12, generator=gen, dtype=torch.float64)
    ys = torch.randint(0, 2, (8, 6), generator=gen)
    runs = {}
    for hooked in (False, True):
        torch.manual_seed(0)
        model = two_linear_encoder().double()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        pr = SevenPruner(
            model, 0.7, start=0, window=8, delta_t=2, fused=True, targets=r"encoder\.",
            optimizer=opt if hooked else None,
        )  # fmt: skip
        for x, y in zip(xs, ys):  # 8 steps: updates k = 0..6, cuts at k = 1, 3, 5, 6
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            pr.step()
        assert pr.masked.holds_zeros is hooked and seven._KERNEL is not False
        runs[hooked] = (model, pr, opt)
    _assert_hooked_equals_unhooked(runs)

    st = {k: [t.clone() for t in v] for k, v in runs[False][1].state.items()}
    keeps = [~runs[False][1].mask[n] for n in runs[False][1].names]  # the kept ones pruned
    ws = [torch.randn(kp.shape, generator=gen, dtype=torch.float64) for kp in keeps]
    gs = [torch.randn(kp.shape, generator=gen, dtype=torch.float64) for kp in keeps]
    coef = torch.tensor([0.8, 0.9, 2.0, 1.5, 1e-9])
    out = {}
    for rezero in (True, False):
        s = {k: [t.clone() for t in v] for k, v in st.items()}
        w = [x.clone() for x in ws]
        cut = torch.tensor(False)
        assert seven._run_fused(s["m"], s["v"], s["S"], w, gs, keeps, coef, cut, True, rezero)
        out[rezero] = (s, w)
    for key in ("m", "v", "S"):
        for a, b in zip(out[True][0][key], out[False][0][key]):
            assert torch.equal(a, b), key
    for w0, w1, wr, kp in zip(ws, out[False][1], out[True][1], keeps):
        assert torch.equal(w1, w0)  # rezero=False: W untouched
        assert torch.equal(wr, w0 * kp) and bool((w0[~kp] != 0).all())  # rezero=True: masked


def test_hf_trainer_hooks_its_optimizer_exactly_in_float64(tmp_path) -> None:
    """`SevenCallback` hooks the Trainer's own AdamW (inside accelerate's wrapper) in
    `on_train_begin`, so `pruner.step()` skips its re-zeroing pass; weights, masks and scores after
    8 steps and 4 cuts are exactly those of `hook_optimizer=False` (float64, decoupled weight decay
    0.1, gradient clipping on). The re-zeroing was not idle there: unhooked, the pruned weights'
    first moments are non-zero."""
    pytest.importorskip("accelerate")
    from seven_prune import SevenCallback

    Trainer = _sequential_trainer()

    data = synthetic_sentiment(
        48, seq_len=10, seed=0
    )  # batches of 6: 8 steps, cuts at k = 1, 3, 5, 6
    runs = {}
    for hook in (False, True):
        model = tiny_bert(seed=2).double()
        pruner = SevenPruner(model, 0.7, start=0, window=8, delta_t=2)
        callback = SevenCallback(pruner, hook_optimizer=hook)
        args = _hf_args(
            tmp_path / str(hook),
            per_device_train_batch_size=6,
            learning_rate=1e-2,
            weight_decay=0.1,
            lr_scheduler_type="constant",
            seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
        trainer.train()
        inner = trainer.optimizer.optimizer  # accelerate's wrapper around the torch AdamW
        assert type(inner) is torch.optim.AdamW
        assert callback.hooked_optimizer is (inner if hook else None)
        assert pruner.masked.holds_zeros is hook
        runs[hook] = (model, pruner, inner)
    _assert_hooked_equals_unhooked(runs)


def test_hf_callback_does_not_hook_an_unsafe_or_missing_optimizer() -> None:
    """No optimizer in the event, one outside `SAFE_OPTIMIZERS`, or `hook_optimizer=False`: not
    hooked (the pruner keeps re-zeroing at every step); a non-bool flag is a TypeError."""
    from seven_prune import SevenCallback

    model = tiny_bert(seed=3)
    pruner = SevenPruner(model, 0.5, start=0, window=2)
    callback = SevenCallback(pruner)
    callback.on_train_begin(None, None, None)
    assert callback.hooked_optimizer is None and not pruner.masked.holds_zeros
    callback.on_train_begin(None, None, None, optimizer=torch.optim.LBFGS(model.parameters()))
    assert callback.hooked_optimizer is None and not pruner.masked.holds_zeros
    off = SevenCallback(pruner, hook_optimizer=False)
    off.on_train_begin(None, None, None, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert off.hooked_optimizer is None and not pruner.masked.holds_zeros
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    callback.on_train_begin(None, None, None, optimizer=sgd)
    assert callback.hooked_optimizer is sgd and pruner.masked.holds_zeros
    with pytest.raises(TypeError, match="hook_optimizer must be True or False, got 1"):
        SevenCallback(pruner, hook_optimizer=1)


def test_hf_callback_refuses_a_transformers_without_on_optimizer_step(monkeypatch) -> None:
    """A transformers whose TrainerCallback lacks `on_optimizer_step` (< 4.42) never steps the
    pruner: on_train_begin raises instead of letting the model train unpruned."""
    import sys
    import types

    from seven_prune import SevenCallback

    callback = SevenCallback(SevenPruner(tiny_bert(seed=3), 0.5, start=0, window=2))
    old = types.ModuleType("transformers")
    old.__version__ = "4.40.0"
    old.TrainerCallback = type("TrainerCallback", (), {"on_step_end": lambda self: None})
    monkeypatch.setitem(sys.modules, "transformers", old)
    with pytest.raises(RuntimeError, match=r"transformers 4\.40\.0 has no .*on_optimizer_step"):
        callback.on_train_begin(None, None, None)
    old.TrainerCallback.on_optimizer_step = lambda self: None
    callback.on_train_begin(None, None, None)  # the event exists: no error
