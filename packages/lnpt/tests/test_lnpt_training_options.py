"""The label-free training options: hard pseudo-labels, the teacher-confidence filter, mixup of
unlabeled inputs, and how the benchmark passes and keys them."""

import copy

import lnpt
import pytest
import torch
import torch.nn.functional as F
from lnpt.bench import BenchConfig, train_label_free
from lnpt.training_ablation import (
    TRAINING_BASE,
    TRAINING_VARIANTS,
    TrainingAblationConfig,
    choose_training,
    run_training_ablation,
)
from maskloop import report
from torch.utils.data import DataLoader


def _pair64():
    torch.manual_seed(0)
    student = lnpt.MLP(8, (16, 12), 3).double()
    teacher = lnpt.MLP(8, (16, 12), 3).double()
    return student, teacher


def test_hard_targets_are_cross_entropy_to_the_teacher_argmax():
    """targets="hard": the logit term is CE(student logits, teacher argmax), temperature unused."""
    student, teacher = _pair64()
    x = torch.randn(12, 8, dtype=torch.float64)
    gap = lnpt.LearningGap(
        student, teacher, feature_weight=0.0, targets="hard", temperature=7.0
    ).setup(x)
    with torch.no_grad():
        expected = F.cross_entropy(student(x), teacher(x).argmax(-1), reduction="none")
    torch.testing.assert_close(gap.per_sample(x), expected, rtol=1e-12, atol=1e-12)
    soft = lnpt.LearningGap(student, teacher, feature_weight=0.0, temperature=7.0).setup(x)
    assert not torch.allclose(soft.per_sample(x), expected)  # the default stays soft KD


def test_confidence_drops_the_logit_term_of_unconfident_samples_only():
    """confidence=c: samples whose teacher top probability is below c get kd = 0, others keep it."""
    student, teacher = _pair64()
    x = torch.randn(40, 8, dtype=torch.float64) * 3
    with torch.no_grad():
        top = torch.softmax(teacher(x), -1).amax(-1)
    c = float(top.median())  # half the samples on each side
    full = lnpt.LearningGap(student, teacher, feature_weight=0.0).setup(x)
    cut = lnpt.LearningGap(student, teacher, feature_weight=0.0, confidence=c).setup(x)
    a, b = full.per_sample(x), cut.per_sample(x)
    sure = top >= c
    assert 0 < int(sure.sum()) < len(x)
    torch.testing.assert_close(b[sure], a[sure], rtol=0, atol=0)
    assert (b[~sure] == 0).all() and (a[~sure] > 0).all()
    # the feature term is kept for every sample
    feats = lnpt.LearningGap(student, teacher, kd_weight=0.0).setup(x).per_sample(x)
    both = lnpt.LearningGap(student, teacher, confidence=c).setup(x).per_sample(x)
    torch.testing.assert_close(both, feats + b, rtol=1e-12, atol=1e-12)


def test_mixup_blends_within_the_batch_and_queries_the_teacher_on_the_blend():
    """LabelFreeObjective(mixup=m): every input is (1-s) x_i + s x_j with s in [0, m], and J is the
    objective on the blended batch; mixup=0 leaves the batch untouched."""
    student, teacher = _pair64()
    x = torch.randn(16, 8, dtype=torch.float64)
    gap = lnpt.LearningGap(student, teacher).setup(x)
    assert lnpt.LabelFreeObjective(gap).mix(x) is x
    obj = lnpt.LabelFreeObjective(gap, mixup=0.4, seed=5)
    mixed = obj.mix(x)
    g = torch.Generator().manual_seed(5)  # the same draws, by hand
    perm = torch.randperm(16, generator=g)
    share = torch.rand(16, generator=g) * 0.4
    torch.testing.assert_close(mixed, (1 - share[:, None]) * x + share[:, None] * x[perm])
    assert share.max() <= 0.4 and not torch.equal(mixed, x)
    obj2 = lnpt.LabelFreeObjective(gap, mixup=0.4, seed=5)
    losses, _ = obj2(student, x)
    torch.testing.assert_close(losses, gap.per_sample(mixed), rtol=1e-12, atol=1e-12)


def test_mixup_training_resumes_from_a_checkpoint_to_identical_weights(tmp_path):
    """The mixup generator's state is checkpointed: a resumed run equals an uninterrupted one."""
    from maskloop import Callback, Checkpoint

    student0, teacher = _pair64()
    x = torch.randn(48, 8, dtype=torch.float64)

    def run(callbacks):
        student = copy.deepcopy(student0)
        gen = torch.Generator().manual_seed(3)
        loader = DataLoader(lnpt.InputsOnly(x), batch_size=8, shuffle=True, generator=gen)
        tr = lnpt.LabelFreeTrainer(student, teacher, lr=1e-2, mixup=0.5, seed=1, targets="hard")
        tr.fit(loader, 4, callbacks=callbacks, progress=False)
        return student

    class StopAfter(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 2:
                state.stop_training = True

    full = run([])
    run([StopAfter(), Checkpoint(tmp_path)])
    resumed = run([Checkpoint(tmp_path)])
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n


def test_bench_passes_its_training_options_and_keys_the_cache_on_them():
    """BenchConfig.label_free reaches the trainer (different options, different weights) and the
    resume-cache fingerprint; the empty dict keeps the keys of runs made before the option."""
    torch.set_num_threads(1)
    data = lnpt.load_digits_split(0)
    torch.manual_seed(0)
    teacher, init = lnpt.MLP(), lnpt.MLP()
    mask = lnpt.prune(init, teacher, [data.student_x[:64]], 0.9, rounds=1)
    students = []
    for opts in ({}, {"feature_weight": 0.0, "targets": "hard"}):
        cfg = BenchConfig(label_free=opts)
        s = copy.deepcopy(init)
        mask.apply_(s)
        train_label_free(s, teacher, data, 1, cfg, 0, mask)
        students.append(s)
    assert not torch.equal(students[0][0].weight, students[1][0].weight)
    # explicit options equal to the old objective train the same weights as the empty dict
    s = copy.deepcopy(init)
    mask.apply_(s)
    train_label_free(
        s,
        teacher,
        data,
        1,
        BenchConfig(label_free={}),
        0,
        mask,
        options=dict(TRAINING_VARIANTS["features+soft"]),
    )
    torch.testing.assert_close(s[0].weight, students[0][0].weight, rtol=0, atol=0)
    keys = {
        BenchConfig(label_free=o).fingerprint("cnn")
        for o in ({}, {"targets": "hard"}, {"targets": "soft"})
    }
    assert len(keys) == 3


def test_training_variants_name_only_what_they_change():
    """Every variant is the old objective plus its named changes; the options are trainer keywords."""
    assert TRAINING_VARIANTS["features+soft"] == TRAINING_BASE
    student, teacher = _pair64()
    for name, opts in TRAINING_VARIANTS.items():
        lnpt.LabelFreeTrainer(student, teacher, **opts)  # every option is accepted
        assert set(opts) == set(TRAINING_BASE), name


def test_choose_training_needs_every_model():
    """choose_training: the best mean over models, only among variants run on every model."""
    acfg = TrainingAblationConfig(models=("mlp", "cnn"), variants=("soft", "hard", "soft-t2"))
    res = report.Results("lnpt", "t")
    for m, v, acc in [
        ("mlp", "soft", 0.9),
        ("cnn", "soft", 0.7),
        ("mlp", "hard", 0.8),
        ("cnn", "hard", 0.9),
        ("mlp", "soft-t2", 0.99),  # best, but never run on cnn
    ]:
        res.add(f"lnpt+{v}", 0, {"val_accuracy": acc}, model=m, sparsity=0.95)
    assert choose_training(res, acfg) == "hard"


@pytest.mark.slow
def test_tiny_training_ablation_runs_on_validation_and_resumes(tmp_path):
    """run_training_ablation: SNIP-supervised reference + each variant, cached arm by arm."""
    bench = BenchConfig(
        models=("mlp",), epochs={"mlp": 1}, teacher_epochs={"mlp": 1}, score_batches=1
    )
    acfg = TrainingAblationConfig(models=("mlp",), seeds=1, variants=("soft", "hard"), bench=bench)
    res, chosen = run_training_ablation(acfg, tmp_path, "test", progress=False, threads=1)
    assert chosen in ("soft", "hard")
    methods = sorted(r.method for r in res.records)
    assert methods == ["lnpt+hard", "lnpt+soft", "snip+supervised", "teacher (dense, other half)"]
    assert "Chosen (highest mean" in (tmp_path / "lnpt_training_ablation.md").read_text()
    acfg.variants = ("soft", "hard", "soft-t1")
    again, _ = run_training_ablation(
        acfg, tmp_path, "test", progress=False, resume=True, budget_s=0.0, threads=1
    )
    assert len(again.records) == 5
    old = {r.method: r.metrics for r in res.records}
    assert all(old[r.method] == r.metrics for r in again.records if r.method in old)


def test_trainer_defaults_come_from_training_defaults_and_named_options_win(monkeypatch):
    """LabelFreeTrainer: options not named are TRAINING_DEFAULTS, then LearningGap's; score is not
    affected by the training defaults."""
    import lnpt.training as tr

    student, teacher = _pair64()
    monkeypatch.setattr(tr, "TRAINING_DEFAULTS", {"feature_weight": 0.0, "mixup": 0.3})
    t = lnpt.LabelFreeTrainer(student, teacher)
    assert t.gap.feature_weight == 0.0 and t.objective.mixup == 0.3
    assert t.gap.targets == TRAINING_BASE["targets"]
    t = lnpt.LabelFreeTrainer(student, teacher, feature_weight=0.5, mixup=0.0)
    assert t.gap.feature_weight == 0.5 and t.objective.mixup == 0.0
    x = torch.randn(8, 8, dtype=torch.float64)
    s1 = lnpt.score(student, teacher, [x])
    monkeypatch.setattr(tr, "TRAINING_DEFAULTS", {})
    s2 = lnpt.score(student, teacher, [x])
    for n in s1:
        assert torch.equal(s1[n], s2[n])


def test_training_default_is_the_validation_choice():
    """The trainer's and the benchmark's default training is the ablation's chosen variant (soft KD
    without the feature term); the first scoring ablation keeps the previous objective it ran with,
    the re-run trains with the current one."""
    from lnpt.ablation import AblationConfig
    from lnpt.training import TRAINING_DEFAULTS

    chosen = {k: v for k, v in TRAINING_VARIANTS["soft"].items() if TRAINING_BASE[k] != v}
    assert TRAINING_DEFAULTS == chosen == {"feature_weight": 0.0}
    assert BenchConfig().label_free == chosen
    assert AblationConfig.previous_training().bench.label_free == {}
    assert AblationConfig().bench.label_free == chosen
    student, teacher = _pair64()
    trainer = lnpt.LabelFreeTrainer(student, teacher)
    assert trainer.gap.feature_weight == 0.0 and trainer.gap.kd_weight == 1.0
    assert trainer.gap.temperature == 4.0 and trainer.gap.targets == "soft"
