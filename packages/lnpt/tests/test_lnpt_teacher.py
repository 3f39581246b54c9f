"""The teacher: the degenerate-teacher warning, the benchmark's teacher recipe and its check."""

import warnings

import lnpt
import pytest
import torch
from lnpt.bench import (
    DEFAULT_EPOCHS,
    PREVIOUS_EPOCHS,
    PREVIOUS_TEACHER_EPOCHS,
    BenchConfig,
    train_teacher,
)
from lnpt.learning_gap import DegenerateTeacherWarning, LearningGap, teacher_degeneracy
from lnpt.teachers import TeacherCheckConfig, choose_recipe, recipe_name, teacher_check
from maskloop import report


def _collapsed_cnn() -> lnpt.SmallCNN:
    """A SmallCNN whose last conv ReLU is dead for every input (as seed 6's teacher at lr 1e-2)."""
    torch.manual_seed(0)
    t = lnpt.SmallCNN((4, 8, 8), 10)
    with torch.no_grad():
        t.features[5].weight.zero_()
        t.features[5].bias.fill_(-1.0)
    return t.eval()


def test_collapsed_teacher_warns_in_setup_score_and_trainer():
    torch.manual_seed(1)
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    teacher = _collapsed_cnn().double()
    student = lnpt.SmallCNN((4, 8, 8), 10).double()
    with pytest.warns(DegenerateTeacherWarning, match="same logits for all 16"):
        LearningGap(student, teacher).setup(x)
    with pytest.warns(DegenerateTeacherWarning, match="cannot guide pruning"):
        lnpt.score(student, teacher, [x])
    mask = lnpt.prune(student, lnpt.SmallCNN((4, 8, 8), 10).double(), [x], 0.5, rounds=1)
    with pytest.warns(DegenerateTeacherWarning):
        lnpt.LabelFreeTrainer(student, teacher, mask).fit([x], epochs=1, progress=False)


def test_working_teacher_and_identical_inputs_do_not_warn():
    torch.manual_seed(2)
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    student = lnpt.SmallCNN((4, 8, 8), 10).double()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateTeacherWarning)
        LearningGap(student, lnpt.SmallCNN((4, 8, 8), 10).double()).setup(x)
        # the same input repeated: a constant output says nothing about the teacher
        same = x[:1].expand(8, -1, -1, -1).clone()
        LearningGap(student, _collapsed_cnn().double()).setup(same)
        LearningGap(student, _collapsed_cnn().double()).setup(x[:1])  # one input: nothing to tell


def test_teacher_degeneracy_names_what_is_constant():
    x = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    varying = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
    constant = torch.tensor([[0.5, -1.0]] * 3, dtype=torch.float64)
    assert teacher_degeneracy(x, varying, varying) is None
    assert teacher_degeneracy(x, varying, constant) == "logits"
    assert teacher_degeneracy(x, torch.zeros(3, 4, dtype=torch.float64), varying) == "features"
    # a difference far above float rounding is not constant
    assert teacher_degeneracy(x, varying, constant + torch.tensor([[0.0], [0.0], [1e-3]])) is None


def test_bench_teacher_recipe_default_and_record_keys():
    """The digits CNN teacher trains at Adam lr 3e-3 for 80 epochs (chosen on validation); the
    other models' teachers at `lr`; the validation record keeps the committed keys."""
    cfg = BenchConfig()
    assert cfg.teacher_lr_of("cnn") == 3e-3 and cfg.teacher_epochs["cnn"] == 80
    assert all(cfg.teacher_lr_of(m) == cfg.lr for m in ("mlp", "cnn1d", "resnet"))
    assert cfg.epochs == DEFAULT_EPOCHS and DEFAULT_EPOCHS["cnn"] == 480
    rec = BenchConfig.validation_record()
    assert rec.epochs == PREVIOUS_EPOCHS and rec.teacher_epochs == PREVIOUS_TEACHER_EPOCHS
    assert rec.teacher_lr == {} and "teacher_lr" not in rec.key_dict()
    assert cfg.fingerprint("cnn") not in (rec.fingerprint("cnn"), "cd00382fea180e87")
    # models whose teacher is unchanged keep the keys of their committed units
    assert cfg.fingerprint("mlp") == rec.fingerprint("mlp") == "2cea280fb19f115a"
    other_lr = BenchConfig(teacher_lr={"cnn": 1e-3})
    assert other_lr.fingerprint("cnn") != cfg.fingerprint("cnn")
    assert other_lr.fingerprint("mlp") == cfg.fingerprint("mlp")


@pytest.mark.parametrize("bad", [{"vit": 1e-3}, {"cnn": 0.0}, {"cnn": True}, {"cnn": "1e-3"}])
def test_teacher_lr_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="teacher_lr"):
        BenchConfig(teacher_lr=bad).check()


def test_train_teacher_uses_the_teacher_lr(monkeypatch):
    seen = []
    real = torch.optim.Adam

    def adam(params, lr):
        seen.append(lr)
        return real(params, lr=lr)

    monkeypatch.setattr(torch.optim, "Adam", adam)
    cfg = BenchConfig(
        teacher_epochs={**PREVIOUS_TEACHER_EPOCHS, "mlp": 1}, teacher_lr={"mlp": 2e-3}
    )
    data = lnpt.load_digits_split(0)
    train_teacher("mlp", data, cfg, 0)
    cfg.teacher_lr = {}
    train_teacher("mlp", data, cfg, 0)
    assert seen == [2e-3, cfg.lr]


def _results(acc: dict[str, list[float]]) -> report.Results:
    res = report.Results("lnpt", "")
    for name, vals in acc.items():
        for seed, v in enumerate(vals):
            res.add(name, seed, {"val_accuracy": v}, model="cnn")
    return res


def test_choose_recipe_rule():
    """No teacher below the floor; then the best mean; within 0.3 points fewer epochs, then the
    larger lr."""
    tc = TeacherCheckConfig(lrs=(1e-2, 3e-3), epochs=(40, 80))
    res = _results(
        {
            recipe_name(1e-2, 40): [0.99, 0.10],  # best single seed, but one teacher collapsed
            recipe_name(1e-2, 80): [0.99, 0.11],
            recipe_name(3e-3, 40): [0.950, 0.950],
            recipe_name(3e-3, 80): [0.952, 0.952],  # ahead by 0.2 points only: a tie
        }
    )
    assert choose_recipe(res, tc) == recipe_name(3e-3, 40)
    res = _results({**{recipe_name(3e-3, e): [0.95, 0.95] for e in (40, 80)}})
    res.add(recipe_name(1e-2, 40), 0, {"val_accuracy": 0.951}, model="cnn")
    res.add(recipe_name(1e-2, 40), 1, {"val_accuracy": 0.951}, model="cnn")
    assert choose_recipe(res, tc) == recipe_name(1e-2, 40)  # tied at 40 epochs: the larger lr
    with pytest.raises(ValueError, match="TEACHER_FLOOR"):
        choose_recipe(_results({recipe_name(1e-2, 40): [0.2, 0.9]}), tc)


def test_teacher_check_runs_resumes_and_rejects_bad_config(tmp_path):
    tc = TeacherCheckConfig(model="mlp", seeds=1, lrs=(1e-2, 1e-3), epochs=(1, 2))
    res, chosen = teacher_check(tc, tmp_path, "t", progress=False)
    names = {r.method for r in res.records}
    assert names == {recipe_name(lr, e) for lr in (1e-2, 1e-3) for e in (1, 2)}
    assert chosen in names and (tmp_path / "lnpt_teacher_mlp.md").exists()
    again, chosen2 = teacher_check(tc, tmp_path, "t", progress=False, resume=True, budget_s=0.0)
    assert chosen2 == chosen
    assert {(r.method, r.metrics["val_accuracy"]) for r in again.records} == {
        (r.method, r.metrics["val_accuracy"]) for r in res.records
    }
    for kw, says in (
        ({"model": "vit"}, "model"),
        ({"lrs": (0.0,)}, "lrs"),
        ({"epochs": ()}, "epochs"),
    ):
        with pytest.raises(ValueError, match=says):
            TeacherCheckConfig(**kw).check()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--sparsities", "1.5"], "--sparsities must be in"),
        (["--sparsities", "0.5", "0.5"], "--sparsities lists 0.5"),
        (["--ablation", "--sparsities", "0.9"], "--sparsities only applies"),
    ],
    ids=["out-of-range", "twice", "not-with-ablation"],
)
def test_bench_sparsities_option_rejects_bad_values(argv, says, capsys, tmp_path):
    from lnpt.cli import main

    with pytest.raises(SystemExit) as exc:  # refused before any work
        main(["bench", *argv, "--out", str(tmp_path / "never")])
    assert exc.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
