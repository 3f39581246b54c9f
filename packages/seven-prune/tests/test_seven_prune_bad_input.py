"""Bad input (issue 14 point 3): every public entry point names the argument and what is allowed."""

import pytest
import torch
from seven_prune import (
    GradualMagnitudePruner,
    MagnitudePruner,
    MovementPruner,
    SanhMovementPruner,
    SevenPruner,
    SnipPruner,
    batch_loss,
    cli,
    make_pruner,
    select_global,
)
from seven_prune.bench import run_epoch_bench
from seven_prune.models import tiny_bert
from seven_prune.pruning import select_flat


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_bert(seed=0)


CONSTRUCTOR_CASES = [
    ("sparsity-nan", {"sparsity": float("nan")}, ValueError, "sparsity"),
    ("sparsity-one", {"sparsity": 1.0}, ValueError, "sparsity"),
    ("sparsity-str", {"sparsity": "0.5"}, TypeError, "sparsity"),
    ("min_density-negative", {"min_density": -0.1}, ValueError, "min_density"),
    ("min_density-one", {"min_density": 1.0}, ValueError, "min_density"),
    ("min_density-str", {"min_density": "0.01"}, TypeError, "min_density"),
    ("scope-unknown", {"scope": "tensor"}, ValueError, "scope"),
    ("pattern-malformed", {"pattern": "2-4"}, ValueError, "pattern"),
    ("pattern-too-sparse", {"sparsity": 0.8, "pattern": "2:4"}, ValueError, "sparsity must be <="),
    ("alpha1-one", {"alpha1": 1.0}, ValueError, "alpha1"),
    ("alpha2-inf", {"alpha2": float("inf")}, ValueError, "alpha2"),
    ("eps-zero", {"eps": 0.0}, ValueError, "eps"),
    ("window-zero", {"window": 0}, ValueError, "window"),
    ("window-float", {"window": 2.5}, TypeError, "window"),
    ("start-negative", {"start": -1}, ValueError, "start"),
    ("delta_t-zero", {"delta_t": 0}, ValueError, "delta_t"),
    ("mode-unknown", {"mode": "during"}, ValueError, "mode"),
    ("moments-unknown", {"moments": "raw"}, ValueError, "moments"),
    ("targets-match-nothing", {"targets": r"^nothing$"}, ValueError, "match no nn.Linear"),
    ("targets-int", {"targets": 3}, TypeError, "targets"),
]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [c[1:] for c in CONSTRUCTOR_CASES],
    ids=[c[0] for c in CONSTRUCTOR_CASES],
)
def test_seven_pruner_constructor_rejects(model, kwargs, exc, match) -> None:
    """SevenPruner(...): out-of-range, wrongly typed or unknown options."""
    kwargs = {"sparsity": 0.5, **kwargs}
    with pytest.raises(exc, match=match):
        SevenPruner(model, **kwargs)


def test_pruner_model_not_a_module() -> None:
    """SevenPruner(model=...): not an nn.Module."""
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        SevenPruner("bert", 0.5)


def test_make_pruner_unknown_name(model) -> None:
    """make_pruner(name=...): an unregistered method name."""
    with pytest.raises(ValueError, match="name must be one of"):
        make_pruner("obd", model, 0.5)


def test_step_before_backward() -> None:
    """SevenPruner.step: called before any backward (no gradients)."""
    pruner = SevenPruner(tiny_bert(seed=1), 0.5, start=0, window=4)
    with pytest.raises(RuntimeError, match="found no gradients"):
        pruner.step()


def test_step_with_nan_gradient_names_the_tensor() -> None:
    """SevenPruner.step: a NaN gradient (NaN loss) is named at the next cut, not pruned on."""
    model = tiny_bert(seed=1)
    pruner = SevenPruner(model, 0.5, start=0, window=4)
    target = next(iter(pruner.params))
    for n, p in pruner.params.items():
        p.grad = torch.full_like(p, float("nan")) if n == target else torch.ones_like(p)
    with pytest.raises(ValueError, match=rf"{target}.*NaN or inf"):
        pruner.step()


def test_movement_built_after_its_window_started() -> None:
    """MovementPruner.step: no pre-step weights recorded (built too late) is an error."""
    model = tiny_bert(seed=1)
    pruner = MovementPruner(model, 0.5, start=0, window=4)
    pruner._w_before = None  # as if built after the step that precedes its window
    for p in pruner.params.values():
        p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match="no weights from before"):
        pruner.step()


def test_gradual_magnitude_needs_no_gradients() -> None:
    """GradualMagnitudePruner.step: works without gradients (no false alarm)."""
    pruner = GradualMagnitudePruner(tiny_bert(seed=1), 0.5, start=0, window=2)
    pruner.step()
    pruner.step()
    assert pruner.done


def test_one_shot_needs_batches(model) -> None:
    """SnipPruner.prune_before_training: batches=None or an empty iterable."""
    pruner = SnipPruner(tiny_bert(seed=2), 0.5)
    with pytest.raises(ValueError, match="needs gradient batches"):
        pruner.prune_before_training(None)
    with pytest.raises(ValueError, match="yielded no batches"):
        pruner.prune_before_training([])


def test_one_shot_step_before_pruning() -> None:
    """MagnitudePruner.step: called before prune_before_training."""
    with pytest.raises(RuntimeError, match="prune_before_training"):
        MagnitudePruner(tiny_bert(seed=2), 0.5).step()


SELECT_CASES = [
    ("nan-score", {"a": torch.tensor([1.0, float("nan")])}, 1, ValueError, "NaN or inf"),
    ("inf-score", {"a": torch.tensor([1.0, float("inf")])}, 1, ValueError, "NaN or inf"),
    ("n_keep-too-large", {"a": torch.ones(3)}, 4, ValueError, "n_keep"),
    ("n_keep-negative", {"a": torch.ones(3)}, -1, ValueError, "n_keep"),
    ("empty-mapping", {}, 0, ValueError, "non-empty"),
    ("not-a-tensor", {"a": [1.0, 2.0]}, 1, TypeError, "must be a tensor"),
]


@pytest.mark.parametrize(
    ("scores", "n_keep", "exc", "match"),
    [c[1:] for c in SELECT_CASES],
    ids=[c[0] for c in SELECT_CASES],
)
def test_select_global_rejects(scores, n_keep, exc, match) -> None:
    """select_global: non-finite scores, n_keep out of range, empty or non-tensor scores."""
    with pytest.raises(exc, match=match):
        select_global(scores, n_keep, warn=False)


def test_select_flat_pattern_with_indivisible_shapes() -> None:
    """select_flat(pattern=(2, 4)): a tensor whose last dimension is not a multiple of 4."""
    with pytest.raises(ValueError, match="divisible by 4"):
        select_flat(torch.rand(6), [6], ["a"], 3, pattern=(2, 4), shapes=[torch.Size([2, 3])])


def test_batch_loss_rejects_unknown_batch_types(model) -> None:
    """batch_loss: a batch that is neither a mapping nor an (inputs, targets) tuple."""
    with pytest.raises(TypeError, match="a batch must be a mapping"):
        batch_loss(model, torch.ones(2, 3))
    with pytest.raises(ValueError, match="needs loss_fn"):
        batch_loss(model, (torch.ones(2, 3, dtype=torch.long), torch.ones(2, dtype=torch.long)))


def test_load_missing_file(tmp_path) -> None:
    """Pruner.load: a path with no file."""
    with pytest.raises(FileNotFoundError, match="no pruner state file"):
        SevenPruner(tiny_bert(seed=3), 0.5).load(tmp_path / "none.safetensors")


def test_epoch_bench_bad_split(tmp_path) -> None:
    """run_epoch_bench(split=...) / epoch_config(split=...): only "test" or "validation"."""
    from seven_prune.bench import epoch_config

    for bad in ("val", "train", None):
        with pytest.raises(ValueError, match=r"split must be one of \['test', 'validation'\]"):
            run_epoch_bench(tmp_path, split=bad)
        with pytest.raises(ValueError, match="split must be one of"):
            epoch_config(None, split=bad)
    assert not list(tmp_path.iterdir())  # refused before anything is written


def test_epoch_bench_bad_max_minutes(tmp_path) -> None:
    """run_epoch_bench(max_minutes=...): zero, negative or not a number."""
    for bad in (0, -1.0, "5"):
        with pytest.raises(ValueError, match="max_minutes"):
            run_epoch_bench(tmp_path, max_minutes=bad)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--seeds", "0"],
        ["bench", "--budget", "epoch", "--max-minutes", "0"],
        ["bench", "--budget", "epoch", "--quick"],
        ["bench", "--max-minutes", "5"],
        ["bench", "--budget", "year"],
        ["bench", "--methods", "PLATON"],
        ["bench", "--reference", "grid.json"],
        ["bench", "--split", "validation"],
        ["bench", "--budget", "epoch", "--split", "val"],
        ["bench", "--sparsities", "0.8"],
        ["bench", "--budget", "epoch", "--sparsities", "0.8"],
        ["bench", "--batches", "16x32"],
        ["bench", "--budget", "overhead", "--batches", "16x0"],
        ["bench", "--budget", "overhead", "--batches", "16*32"],
        ["bench", "--rounds", "100"],
        ["bench", "--budget", "overhead", "--rounds", "19"],
        ["bench", "--budget", "overhead", "--reference", "grid.json"],
    ],
    ids=[
        "seeds-zero",
        "max-minutes-zero",
        "quick-with-epoch",
        "max-minutes-short",
        "budget-unknown",
        "methods-short",
        "reference-short",
        "split-short",
        "split-unknown",
        "sparsities-short",
        "sparsities-without-methods",
        "batches-short",
        "batches-zero",
        "batches-malformed",
        "rounds-short",
        "rounds-too-few",
        "reference-overhead",
    ],
)
def test_cli_bench_rejects(argv, capsys) -> None:
    """seven-prune bench: out-of-range or conflicting options exit with a usage error."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


SANH_CASES = [
    ("score_lr-zero", {"score_lr": 0.0}, ValueError, "score_lr"),
    ("score_lr-nan", {"score_lr": float("nan")}, ValueError, "score_lr"),
    ("score_lr-str", {"score_lr": "1e-2"}, TypeError, "score_lr must be a real number"),
    ("score_lr-bool", {"score_lr": True}, TypeError, "score_lr"),
    ("score_lr-negative", {"score_lr": -1e-2}, ValueError, r"score_lr must be .* \(0, inf\)"),
    ("score_lr_schedule-number", {"score_lr_schedule": 0.5}, TypeError, "score_lr_schedule"),
    ("betas-one", {"betas": (1.0, 0.999)}, ValueError, "betas"),
    ("betas-single", {"betas": (0.9,)}, ValueError, "betas"),
    ("eps-zero", {"eps": 0.0}, ValueError, "eps"),
    ("eps-none", {"eps": None}, TypeError, "eps"),
    ("score_init-inf", {"score_init": float("inf")}, ValueError, "score_init"),
    ("score_init-str", {"score_init": "0"}, TypeError, "score_init"),
    ("mode-pre", {"mode": "pre"}, ValueError, "mode"),
    ("pattern-2:4", {"pattern": "2:4"}, ValueError, "pattern"),
    ("scope-unknown", {"scope": "row"}, ValueError, "scope"),
    ("window-zero", {"window": 0}, ValueError, "window"),
]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [c[1:] for c in SANH_CASES],
    ids=[c[0] for c in SANH_CASES],
)
def test_sanh_movement_constructor_rejects(kwargs, exc, match) -> None:
    """SanhMovementPruner(...): out-of-range, wrongly typed or unsupported options."""
    model = tiny_bert(seed=0)
    with pytest.raises(exc, match=match):
        SanhMovementPruner(model, 0.5, **kwargs)
    for m in model.modules():  # a refused pruner leaves no layer rewired
        assert "forward" not in m.__dict__


def test_sanh_movement_step_before_backward() -> None:
    """SanhMovementPruner.step: called before any backward (no gradients)."""
    with pytest.raises(RuntimeError, match="found no gradients"):
        SanhMovementPruner(tiny_bert(seed=1), 0.5, start=0, window=4).step()


def test_sanh_movement_load_after_final_cut() -> None:
    """SanhMovementPruner.load_state_dict: into a pruner whose weights are already cut."""
    model = tiny_bert(seed=1)
    pruner = SanhMovementPruner(model, 0.5, start=0, window=2)
    state = pruner.state_dict()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    pruner.step()
    assert pruner.final
    with pytest.raises(ValueError, match="final cut"):
        pruner.load_state_dict(state)


def test_epoch_bench_unknown_method(tmp_path) -> None:
    """run_epoch_bench(methods=...): a label the one-epoch bench does not know."""
    with pytest.raises(ValueError, match="methods: 'OBD'"):
        run_epoch_bench(tmp_path, methods=["OBD"])


def test_hook_optimizer_rejects_a_non_optimizer_and_skips_foreign_ones() -> None:
    from seven_prune import SevenPruner
    from seven_prune.models import tiny_bert

    model = tiny_bert(seed=0)
    pr = SevenPruner(model, 0.5, window=4)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got dict"):
        pr.hook_optimizer({})
    head_only = torch.optim.AdamW(model.classifier.parameters())  # no target weight in it
    assert pr.hook_optimizer(head_only) is False and not pr.masked.holds_zeros
    assert pr.hook_optimizer(torch.optim.AdamW(model.parameters())) is True
    assert pr.masked.holds_zeros
