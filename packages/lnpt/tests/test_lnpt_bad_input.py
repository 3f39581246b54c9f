"""Bad input to lnpt's public entry points: each raises a ValueError/TypeError naming the argument.

Also the persistence of what a user keeps (a mask), reloaded in a fresh process.
"""

import subprocess
import sys
import textwrap

import lnpt
import pytest
import torch
from torch import nn


def _pair():
    torch.manual_seed(0)
    return lnpt.MLP(8, (16, 12), 3), lnpt.MLP(8, (16, 12), 3)


X = torch.randn(8, 8)


def test_score_student_not_a_module():
    """lnpt.score: student is not an nn.Module"""
    _, teacher = _pair()
    with pytest.raises(TypeError, match="student must be a torch.nn.Module"):
        lnpt.score("net", teacher, [X])


def test_score_teacher_list_with_a_non_module():
    """lnpt.score: a teacher checkpoint list holding a non-module"""
    student, teacher = _pair()
    with pytest.raises(TypeError, match=r"teacher\[1\] must be a torch.nn.Module"):
        lnpt.score(student, [teacher, {"w": 1}], [X])


def test_score_empty_teacher_list():
    """lnpt.score: an empty list of teacher checkpoints"""
    student, _ = _pair()
    with pytest.raises(TypeError, match="non-empty list"):
        lnpt.score(student, [], [X])


@pytest.mark.parametrize("value", ["max", 1, "layer"], ids=["max", "int", "layer"])
def test_score_bad_score_norm(value):
    """lnpt.score: score_norm not None/'mean'/'sum'"""
    student, teacher = _pair()
    with pytest.raises(ValueError, match="score_norm must be one of"):
        lnpt.score(student, teacher, [X], score_norm=value)


def test_score_bare_tensor_data():
    """lnpt.score: unlabeled is a bare tensor instead of batches"""
    student, teacher = _pair()
    with pytest.raises(TypeError, match="not a bare tensor"):
        lnpt.score(student, teacher, X)


def test_score_empty_data():
    """lnpt.score: unlabeled yields no batches"""
    student, teacher = _pair()
    with pytest.raises(ValueError, match="unlabeled is empty"):
        lnpt.score(student, teacher, [])


def test_score_nan_inputs():
    """lnpt.score: NaN in the inputs makes the objective non-finite"""
    student, teacher = _pair()
    with pytest.raises((FloatingPointError, ValueError)):
        lnpt.score(student, teacher, [torch.full((4, 8), float("nan"))], adaptor="identity")


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, float("nan")], ids=["negative", "one", "nan"])
def test_prune_sparsity_out_of_range(sparsity):
    """lnpt.prune: sparsity outside [0, 1)"""
    student, teacher = _pair()
    with pytest.raises(ValueError, match="sparsity must be in"):
        lnpt.prune(student, teacher, [X], sparsity)


def test_prune_rounds_zero():
    """lnpt.prune: rounds < 1"""
    student, teacher = _pair()
    with pytest.raises(ValueError, match="rounds must be >= 1, got 0"):
        lnpt.prune(student, teacher, [X], 0.5, rounds=0)


def test_learning_gap_bad_gap_form():
    """lnpt.LearningGap: gap not 'squared'/'norm'"""
    student, teacher = _pair()
    with pytest.raises(
        ValueError, match="gap must be 'squared', 'norm', 'relation' or 'relation-centered'"
    ):
        lnpt.LearningGap(student, teacher, gap="l1")


def test_learning_gap_mismatched_classes():
    """lnpt.LearningGap.setup: teacher predicts other classes than the student"""
    student = lnpt.MLP(8, (16,), 3)
    teacher = lnpt.MLP(8, (16,), 5)
    with pytest.raises(ValueError, match="must predict the same classes"):
        lnpt.LearningGap(student, teacher).setup(X)


def test_objective_bad_gap():
    """lnpt.LabelFreeObjective: gap is not a LearningGap"""
    with pytest.raises(TypeError, match="gap must be a LearningGap"):
        lnpt.LabelFreeObjective(lambda x: x)


def test_trainer_bad_callback():
    """lnpt.LabelFreeTrainer.fit: a callback that is not a maskloop.Callback"""
    student, teacher = _pair()
    with pytest.raises(TypeError, match="callbacks must be maskloop.Callback"):
        lnpt.LabelFreeTrainer(student, teacher).fit([X], 1, callbacks=[print], progress=False)


def test_trainer_zero_epochs():
    """lnpt.LabelFreeTrainer.fit: epochs < 1"""
    student, teacher = _pair()
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        lnpt.LabelFreeTrainer(student, teacher).fit([X], 0, progress=False)


def test_mnist1d_num_samples_too_small():
    """lnpt.load_mnist1d_split: num_samples < 100"""
    with pytest.raises(ValueError, match="num_samples must be an int >= 100"):
        lnpt.load_mnist1d_split(0, num_samples=10)


def test_validation_fraction_out_of_range():
    """DigitsSplit.validation: fraction outside (0, 1)"""
    data = lnpt.load_digits_split(0)
    with pytest.raises(ValueError, match="fraction must be in"):
        data.validation(1.5)


def test_models_bad_widths():
    """lnpt.CNN1d / lnpt.SmallResNet: channels not three positive widths"""
    with pytest.raises(ValueError, match="channels must be 3 positive widths"):
        lnpt.CNN1d((4, 0, 8))
    with pytest.raises(ValueError, match="channels must be 3 positive widths"):
        lnpt.SmallResNet((4, 8))


def test_anatomy_bad_input_shape():
    """lnpt.anatomy.effective_density: input_shape not positive ints"""
    from lnpt.anatomy import effective_density

    model = nn.Linear(3, 2)
    mask = lnpt.baseline_mask("magnitude", model, 0.5)
    with pytest.raises(ValueError, match="input_shape must be a sequence of positive ints"):
        effective_density(model, mask, (0,))


def test_bench_config_unknown_model():
    """lnpt.bench.BenchConfig.check: a model name that does not exist"""
    from lnpt.bench import BenchConfig

    with pytest.raises(ValueError, match="models .* unknown"):
        BenchConfig(models=("vit",)).check()


def test_mask_reloads_in_a_fresh_process(tmp_path):
    """WeightMask from lnpt.prune: saved as safetensors, reloaded in a fresh process, identical."""
    student, teacher = _pair()
    mask = lnpt.prune(student, teacher, [X], 0.8, min_density=0)
    path = tmp_path / "mask.safetensors"
    mask.save(path)
    torch.save(mask.state_dict(), tmp_path / "expected.pt")
    code = textwrap.dedent(
        f"""
        import torch
        from maskloop import WeightMask
        m = WeightMask.load({str(path)!r})
        e = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        assert set(m.names) == set(e) and all(torch.equal(m[n], e[n]) for n in e)
        print("ok", m.num_pruned)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ok", str(mask.num_pruned)]


def test_learning_gap_bad_targets():
    """lnpt.LearningGap: targets not 'soft' or 'hard'"""
    student, teacher = _pair()
    with pytest.raises(ValueError, match="targets must be 'soft' or 'hard'"):
        lnpt.LearningGap(student, teacher, targets="pseudo")


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")], ids=["negative", "above-1", "nan"])
def test_learning_gap_confidence_out_of_range(value):
    """lnpt.LearningGap: confidence outside [0, 1]"""
    student, teacher = _pair()
    with pytest.raises(ValueError, match="confidence must be"):
        lnpt.LearningGap(student, teacher, confidence=value)


@pytest.mark.parametrize("value", [-0.1, 0.6, float("inf")], ids=["negative", "above-half", "inf"])
def test_trainer_mixup_out_of_range(value):
    """lnpt.LabelFreeTrainer: mixup outside [0, 0.5]"""
    student, teacher = _pair()
    with pytest.raises(ValueError, match="mixup must be"):
        lnpt.LabelFreeTrainer(student, teacher, mixup=value)


def test_objective_seed_not_an_int():
    """lnpt.LabelFreeObjective: seed not an int"""
    student, teacher = _pair()
    with pytest.raises(TypeError, match="seed must be an int"):
        lnpt.LabelFreeObjective(lnpt.LearningGap(student, teacher), seed=1.5)


def test_training_ablation_unknown_variant():
    """lnpt bench --training-ablation: an unknown training variant"""
    from lnpt.training_ablation import TrainingAblationConfig

    with pytest.raises(ValueError, match="variants \\['nope'\\] unknown"):
        TrainingAblationConfig(variants=("nope",)).check()
