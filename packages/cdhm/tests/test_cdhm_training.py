"""Training through maskloop.fit: Checkpoint resume, the batch sampler and no hidden Pyro state."""

import numpy as np
import pyro
import pytest
import torch
from cdhm import AlignedCNNClassifier, CDHMClassifier, simulate_domain
from cdhm.training import ClipGradNorm, DomainAdaptationObjective, SourceTargetBatches
from maskloop import Callback, Checkpoint, LoopState

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pyro.*")


@pytest.fixture(scope="module")
def toy():
    kw = {"recordings_per_class": 2, "windows_per_recording": 5, "window": 256}
    a = simulate_domain("L0", 0, seed=0, tier="mild", **kw)
    b = simulate_domain("D", 1, seed=0, tier="hard", **kw)
    return a, b


class _StopAfter(Callback):
    """Interrupt a run after `epochs` epochs (the Checkpoint then saves it)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, state: LoopState) -> None:
        if state.epoch >= self.epochs:
            state.stop_training = True


def _fit(est, data, callbacks=()):
    a, b = data
    return est.fit(a.x, a.y, b.x, a.domain, b.domain, callbacks=list(callbacks))


@pytest.mark.parametrize(
    "make",
    [
        lambda: CDHMClassifier(
            n_segments=4, epochs=4, s_dim=3, z_dim=2, hidden=8, batch_size=8, alignment="dann"
        ),
        lambda: CDHMClassifier(
            n_segments=4,
            epochs=4,
            s_dim=3,
            z_dim=2,
            hidden=8,
            batch_size=8,
            elbo="meanfield",
        ),
        # the untied guide split at 0.3 (in epoch 2): the resume starts after the split, with
        # the target guide's Adam state already carried (target_opt_state="auto"), which must not
        # be carried again
        lambda: CDHMClassifier(
            n_segments=4, epochs=4, s_dim=3, z_dim=2, hidden=8, batch_size=8, adapt_start=0.3
        ),
        lambda: AlignedCNNClassifier("dann", n_segments=4, epochs=4, hidden=8, batch_size=8),
    ],
    ids=["cdhm-dann", "cdhm-default-mmd-meanfield", "cdhm-resume-after-split", "cnn-dann"],
)
def test_checkpoint_resume_gives_the_uninterrupted_weights(toy, tmp_path, make):
    """Stop after 2 of 4 epochs, resume in a fresh estimator: weights equal bit for bit."""
    torch.set_num_threads(1)
    full = _fit(make(), toy)
    first = _fit(make(), toy, [_StopAfter(2), Checkpoint(tmp_path)])
    assert len(first.history_["loss"]) == 2
    ref = {k: v.clone() for k, v in first.net_.state_dict().items()}
    assert any(not torch.equal(ref[k], v) for k, v in full.net_.state_dict().items())
    ckpt = Checkpoint(tmp_path)
    resumed = _fit(make(), toy, [_StopAfter(99), ckpt])
    assert ckpt.resumed_from == 2
    assert resumed.history_["loss"] == full.history_["loss"]
    for k, v in full.net_.state_dict().items():
        assert torch.equal(resumed.net_.state_dict()[k], v), k
    np.testing.assert_array_equal(resumed.predict(toy[1].x), full.predict(toy[1].x))


def test_the_removed_index_key_never_entered_a_fit(toy, monkeypatch):
    """Session 33 removed the unused batch key ``it`` (the target windows' indices): a default
    CDHM fit whose batches carry it again gives the same probabilities bit for bit, so the
    committed rows (fitted with it) are the fits of the current code."""
    torch.set_num_threads(1)

    def make():
        return CDHMClassifier(
            n_segments=4, epochs=3, s_dim=3, z_dim=2, hidden=8, batch_size=8, progress=False
        )

    now = _fit(make(), toy).predict_proba(toy[1].x)
    plain_iter = SourceTargetBatches.__iter__

    def with_index(self):
        state = self.rng.bit_generator.state
        for batch in plain_iter(self):
            yield {**batch, "it": torch.zeros(len(batch["xs"]), dtype=torch.long)}
        assert self.rng.bit_generator.state != state  # the generator did draw

    monkeypatch.setattr(SourceTargetBatches, "__iter__", with_index)
    old = _fit(make(), toy).predict_proba(toy[1].x)
    np.testing.assert_array_equal(old, now)


def test_no_hidden_state_in_pyro_param_store(toy):
    """Every trained parameter lives in the estimator's module; Pyro's global store stays empty."""
    pyro.clear_param_store()
    est = _fit(CDHMClassifier(n_segments=4, epochs=1, s_dim=3, z_dim=2, hidden=8), toy)
    assert len(pyro.get_param_store()) == 0
    assert sum(p.numel() for p in est.net_.parameters()) > 0


def test_batches_cover_the_source_each_epoch_and_resume_their_generator():
    xs, ys, cs = torch.arange(11.0)[:, None], torch.arange(11), torch.zeros(11, dtype=torch.long)
    xt, ct = torch.arange(3.0)[:, None] + 100, torch.ones(3, dtype=torch.long)
    data = SourceTargetBatches(xs, ys, cs, xt, ct, batch_size=5, seed=3)
    batches = list(data)
    assert len(data) == len(batches) == 2  # 5 + 5, the last single window is skipped
    seen = torch.cat([b["ys"] for b in batches])
    assert len(set(seen.tolist())) == 10
    assert all(len(b["xt"]) == len(b["xs"]) for b in batches)  # target drawn with replacement
    # the draws are the generator's, in order: a permutation of the source, then per batch the
    # target windows; a batch carries only xs, ys, cs, xt, ct (no index key: none is read)
    rng = np.random.default_rng(3)
    perm = rng.permutation(11)
    for b, batch in enumerate(batches):
        tidx = rng.choice(3, size=5, replace=True)
        assert torch.equal(batch["ys"], ys[perm[5 * b : 5 * b + 5]])
        assert torch.equal(batch["xt"], xt[tidx]) and torch.equal(batch["ct"], ct[tidx])
        assert set(batch) == {"xs", "ys", "cs", "xt", "ct"}
    saved = data.state_dict()
    nxt = [b["ys"].tolist() for b in data]
    data.load_state_dict(saved)
    assert [b["ys"].tolist() for b in data] == nxt
    with pytest.raises(ValueError, match="xs, ys and cs"):
        SourceTargetBatches(xs, ys[:3], cs, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="xt and ct"):
        SourceTargetBatches(xs, ys, cs, xt, None, batch_size=4, seed=0)


def test_objective_progress_and_clip_arguments():
    seen = []

    def step(batch, progress):
        seen.append(progress)
        return batch["xs"].sum() * 0 + 2.0, {"loss": 2.0}

    obj = DomainAdaptationObjective(step, total_steps=5)
    state = LoopState(torch.nn.Linear(1, 1), None, None, None, 1, torch.device("cpu"))
    state.step = 2
    obj.on_batch_start(state)
    losses, logs = obj(state.model, {"xs": torch.ones(3, 1), "xt": torch.ones(3, 1)})
    assert seen == [0.5] and losses.shape == (6,) and float(losses.mean()) == 2.0
    with pytest.raises(TypeError, match="step_fn"):
        DomainAdaptationObjective(3, 5)
    with pytest.raises(ValueError, match="max_norm"):
        ClipGradNorm(0.0)
