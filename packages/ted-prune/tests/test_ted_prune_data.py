"""Built-in data, loaders, budget matching of the benchmark's methods, and the CLI."""

import pytest
import torch
from ted_prune.bench import METHODS, make_pruner, taylor_check, train_digits
from ted_prune.cli import main
from ted_prune.data import digits, load_text_csv, symmetric_label_noise


def test_label_noise_flips_exactly_the_rate():
    y = torch.arange(100) % 10
    noisy, flipped = symmetric_label_noise(y, 0.2, 10, seed=3)
    assert flipped.sum() == 20
    assert (noisy[flipped] != y[flipped]).all() and (noisy[~flipped] == y[~flipped]).all()
    with pytest.raises(ValueError, match="rate"):
        symmetric_label_noise(y, 1.0, 10)


def test_digits_split_and_noise():
    tr, te, flipped = digits(0, noise=0.2, image=True)
    assert len(tr) + len(te) == 1797 and tr.tensors[0].shape[1:] == (1, 8, 8)
    assert flipped.float().mean().item() == pytest.approx(0.2, abs=0.01)


def test_text_csv_loader(tmp_path):
    p = tmp_path / "reviews.csv"
    p.write_text(
        'text,label,source\n"good, fun",1,rotten_tomatoes\nbad,0,imdb\ndull,0,rotten_tomatoes\n'
    )
    texts, labels = load_text_csv(p, source="rotten_tomatoes")
    assert texts == ["good, fun", "dull"] and labels == [1, 0]
    with pytest.raises(FileNotFoundError):
        load_text_csv(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("sentence,y\na,1\n")
    with pytest.raises(ValueError, match="text,label"):
        load_text_csv(tmp_path / "bad.csv")


@pytest.mark.parametrize("method", METHODS)
def test_bench_methods_meet_the_budget(method):
    """Every method's planned f (TED: trained + re-scoring passes) matches the budget."""
    p = make_pruner(method, 500, epochs=20, budget=0.5, seed=0)
    plan = p.planned_budget()
    tol = 0.06 if method == "InfoBatch" else 0.01  # InfoBatch: epoch 0 and rounding of r
    assert plan["f"] == pytest.approx(0.5, abs=tol)
    if method.startswith("TED"):
        assert plan["scored"] > 0 and plan["trained"] < plan["f"]  # re-scoring is paid for
        assert plan["f"] == pytest.approx(plan["trained"] + plan["scored"] / 3)


def test_train_digits_runs_and_reports():
    r = train_digits("TED", "mlp", 0.0, 0.5, seed=0, epochs=4)
    assert 0 < r["accuracy"] <= 100 and 0.4 < r["f"] < 0.8


def test_taylor_check_returns_correlations():
    t = taylor_check(seed=0, masks=4, warm_epochs=1, max_samples=256)
    assert set(t) == {"spearman_full", "spearman_last_layer"}
    assert all(-1 <= v <= 1 for v in t.values())


def test_cli_version(capsys):
    import ted_prune

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == ted_prune.__version__
