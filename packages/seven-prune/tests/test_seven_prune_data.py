"""Loaders on files the tests write; tokenisation; built-in data; CLI wiring."""

from pathlib import Path

import pytest
import torch
from maskloop.testing import options_without_help, relative_links
from seven_prune import cli
from seven_prune.data import (
    TokenizedDataset,
    collate_trim,
    digits_datasets,
    load_movie_reviews,
    read_glue_tsv,
    split_indices,
    synthetic_sentiment,
    tokenize,
    validation_indices,
)


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_glue_sst2_and_pairs(tmp_path) -> None:
    sst = _write(tmp_path / "sst.tsv", ["sentence\tlabel", "a fine film \t1", 'dull "and" slow\t0'])
    texts, labels = read_glue_tsv(sst, "sst2")
    assert texts == ["a fine film ", 'dull "and" slow']
    assert labels == [1, 0]
    mrpc = _write(
        tmp_path / "mrpc.tsv",
        [
            "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
            "1\t1\t2\tHe said.\tHe told.",
            "0\t3\t4\tA\tB",
        ],
    )
    texts, labels = read_glue_tsv(mrpc, "mrpc")
    assert texts == [("He said.", "He told."), ("A", "B")]
    assert labels == [1, 0]


def test_glue_string_labels_and_headerless(tmp_path) -> None:
    mnli = _write(
        tmp_path / "mnli.tsv",
        ["index\tsentence1\tsentence2\tgold_label", "0\tx\ty\tneutral", "1\tx\tz\tentailment"],
    )
    texts, labels = read_glue_tsv(mnli, "mnli")
    assert labels == [2, 1]
    rte = _write(
        tmp_path / "rte.tsv",
        ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tnot_entailment", "1\tc\td\tentailment"],
    )
    assert read_glue_tsv(rte, "rte")[1] == [1, 0]  # sorted label names
    cola = _write(
        tmp_path / "cola.tsv", ["gj04\t1\t\tThe book is red.", "gj04\t0\t*\tBook red the is."]
    )
    texts, labels = read_glue_tsv(cola, "cola")
    assert texts == ["The book is red.", "Book red the is."]
    assert labels == [1, 0]


def test_glue_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no TSV file"):
        read_glue_tsv(tmp_path / "missing.tsv", "sst2")
    bad = _write(tmp_path / "bad.tsv", ["text\tlabel", "a\t1"])
    with pytest.raises(ValueError, match="not all in header"):
        read_glue_tsv(bad, "sst2")
    with pytest.raises(ValueError, match="task must be one of"):
        read_glue_tsv(bad, "squad")
    with pytest.raises(ValueError, match="give task= or both"):
        read_glue_tsv(bad)
    short = _write(tmp_path / "short.tsv", ["sentence\tlabel", "only-one-field"])
    with pytest.raises(ValueError, match="has 1 fields"):
        read_glue_tsv(short, "sst2")
    odd = _write(tmp_path / "odd.tsv", ["sentence\tlabel", "a\tyes"])
    with pytest.raises(ValueError, match="not in label_names"):
        read_glue_tsv(odd, "sst2", label_names=["no"])


def test_movie_reviews_csv(tmp_path) -> None:
    path = _write(
        tmp_path / "reviews.csv",
        [
            "text,label,source",
            '"great, really",1,rotten_tomatoes',
            "awful,0,imdb",
            "meh,0,rotten_tomatoes",
        ],
    )
    assert load_movie_reviews("rotten_tomatoes", path) == (["great, really", "meh"], [1, 0])
    assert load_movie_reviews("imdb", path) == (["awful"], [0])
    with pytest.raises(ValueError, match="source must be"):
        load_movie_reviews("yelp", path)
    with pytest.raises(FileNotFoundError):
        load_movie_reviews("imdb", tmp_path / "nope.csv")
    bad = _write(tmp_path / "bad.csv", ["review,label", "x,1"])
    with pytest.raises(ValueError, match="lacks the columns"):
        load_movie_reviews("imdb", bad)


def test_tokenize_with_model_tokenizer_and_trim(tmp_path) -> None:
    from transformers import BertTokenizer

    vocab = _write(
        tmp_path / "vocab.txt", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"]
    )
    tok = BertTokenizer(vocab_file=str(vocab))
    ds = tokenize(["good film", "film"], [1, 0], tok, max_len=8)
    assert isinstance(ds, TokenizedDataset)
    assert ds.tensors["input_ids"].shape == (2, 8)
    assert ds[1]["labels"].item() == 0
    batch = collate_trim([ds[0], ds[1]])
    assert batch["input_ids"].shape[1] == int(ds.tensors["attention_mask"].sum(1).max())
    pairs = tokenize([("good", "film")], [1], tok, max_len=8)
    assert int(pairs.tensors["token_type_ids"].sum()) > 0
    with pytest.raises(ValueError, match="same length"):
        tokenize(["a"], [1, 0], tok)
    with pytest.raises(ValueError, match="max_len"):
        tokenize(["a"], [1], tok, max_len=1)


def test_builtin_data() -> None:
    ds = synthetic_sentiment(200, seq_len=12, seed=3)
    assert len(ds) == 200
    assert 0.3 < float(ds.tensors["labels"].float().mean()) < 0.7
    assert torch.equal(
        ds.tensors["input_ids"], synthetic_sentiment(200, seq_len=12, seed=3).tensors["input_ids"]
    )
    tr, te = split_indices(10, 3, seed=0)
    assert len(tr) == 7 and len(te) == 3 and not set(tr) & set(te)
    train, test = digits_datasets(test=100)
    assert len(train) + len(test) == 1797
    assert train[0]["pixel_values"].shape == (1, 8, 8)
    assert float(train.tensors["pixel_values"].max()) <= 1.0


def test_cli_version_and_help(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == "0.1.0"
    with pytest.raises(SystemExit) as exc:
        cli.main([])  # a command is required
    assert exc.value.code == 2 and "{demo,bench}" in capsys.readouterr().err


def test_cli_every_option_has_help() -> None:
    """Every option and sub-command of `seven-prune` has help text; the shared flags are there."""
    parser = cli.build_parser()
    assert options_without_help(parser) == []
    for name in ("demo", "bench"):
        assert {"--seed", "--threads"} <= set(parser.subcommands[name]._option_string_actions)
    own = {"--quick", "--out", "--resume", "--budget", "--seeds", "--max-minutes", "--tasks"}
    assert own <= set(parser.subcommands["bench"]._option_string_actions)
    assert "./seven-prune-bench/" in parser.subcommands["bench"].format_help()
    assert parser.parse_args(["bench"]).out == Path("seven-prune-bench")
    assert (parser.parse_args(["demo"]).threads, parser.parse_args(["bench"]).threads) == (1, 2)


def test_readme_usage_example_runs(capsys) -> None:

    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    code = text.split("## Usage", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, str(readme), "exec"), {})
    out = capsys.readouterr().out
    assert 0.79 < float(out.split()[0]) <= 0.8  # the printed achieved sparsity


def test_cli_bench_wiring(tmp_path, monkeypatch, capsys) -> None:
    import seven_prune.bench as bench

    seen = {}

    def fake(quick, out, seeds, tasks, command=None, resume=False, threads=2):
        seen.update(
            quick=quick, seeds=seeds, tasks=tasks, command=command, resume=resume, threads=threads
        )
        (out / "seven-prune.md").write_text("table\n")

    monkeypatch.setattr(bench, "run_bench", fake)
    assert (
        cli.main(["bench", "--quick", "--seeds", "3", "--tasks", "vision", "--out", str(tmp_path)])
        == 0
    )
    assert seen == {
        "quick": True,
        "seeds": 3,
        "tasks": ("vision",),
        "command": None,  # run_bench records bench_command(quick, seeds, tasks, threads)
        "resume": False,
        "threads": 2,
    }
    assert bench.bench_command(True, 3, ("vision",)) == (
        "seven-prune bench --quick --seeds 3 --tasks vision"
    )
    assert bench.bench_command(False) == "seven-prune bench"
    assert bench.bench_command(False, threads=1) == "seven-prune bench --threads 1"
    assert cli.TASKS == bench.TASKS
    assert cli.SPLITS == bench.SPLITS  # the CLI keeps its own copy to start fast
    assert "table" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["bench", "--seeds", "0", "--out", str(tmp_path)])


def test_cli_overhead_batches_reach_the_comparison(tmp_path, monkeypatch, capsys) -> None:
    """`bench --budget overhead --batches 16x32` times only that shape (the rest as by default)."""
    import seven_prune.bench as bench

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return "results"

    def write(results, out, seconds):
        (out / f"{bench.OVERHEAD_STEM}.md").write_text(f"{results}\n")

    monkeypatch.setattr(bench, "overhead_compare", fake)
    monkeypatch.setattr(bench, "write_overhead_outputs", write)
    argv = ["bench", "--budget", "overhead", "--batches", "16x32", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    assert seen["shapes"] == [(16, 32)] and seen["threads"] == 2
    assert "results" in capsys.readouterr().out
    seen.clear()
    assert cli.main(argv[:3] + ["--out", str(tmp_path)]) == 0
    assert "shapes" not in seen  # overhead_compare's default: 16x32 and 32x64
    assert "methods" not in seen and "rounds" not in seen  # its defaults too
    seen.clear()
    extra = ["--methods", "SEVEN_dyn", "PLATON", "--rounds", "40"]
    assert cli.main(argv[:3] + extra + ["--out", str(tmp_path)]) == 0
    assert seen["methods"] == ["SEVEN_dyn", "PLATON"] and seen["rounds"] == 40


def test_readme_links_are_absolute() -> None:
    """README links and images must work on PyPI: absolute URLs only (no repository paths)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert relative_links(text) == []


def test_validation_indices_hold_out_part_of_train_and_never_touch_test() -> None:
    """validation_indices: a seeded split of the training indices only; disjoint, complete, fixed."""
    import numpy as np

    tr, te = split_indices(8530, 800, seed=0)
    fit, val = validation_indices(tr, 800)
    assert len(val) == 800 and len(fit) == 8530 - 1600
    assert not set(val) & set(te) and not set(fit) & set(te) and not set(fit) & set(val)
    assert np.array_equal(np.sort(np.concatenate([fit, val])), tr)  # nothing lost or added
    again = validation_indices(tr.copy(), 800)
    assert np.array_equal(again[0], fit) and np.array_equal(again[1], val)  # deterministic
    other = validation_indices(tr, 800, seed=2)[1]
    assert not np.array_equal(other, val)  # the seed decides it
    assert np.all(np.diff(val) > 0) and np.all(np.diff(fit) > 0)  # sorted, no repeats
    with pytest.raises(ValueError, match=r"validation must be in \(0, 7730\)"):
        validation_indices(tr, 7730)
    with pytest.raises(ValueError, match="validation must be in"):
        validation_indices(tr, 0)
    with pytest.raises(TypeError, match="validation must be an int"):
        validation_indices(tr, 0.1)
    with pytest.raises(ValueError, match="1-D"):
        validation_indices(tr.reshape(2, -1), 10)
