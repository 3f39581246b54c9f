"""Baselines: each score equals its definition, and every pruner reaches the target sparsity."""

import math

import pytest
import torch
from seven_prune import (
    PRUNERS,
    GradualMagnitudePruner,
    GradualPruner,
    GraspPruner,
    MagnitudePruner,
    MovementPruner,
    PlatonPruner,
    RandomPruner,
    SevenNoConsistencyPruner,
    SnipPruner,
    TaylorPruner,
    make_pruner,
)
from seven_prune.models import tiny_bert


def _batches(n: int = 3, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "input_ids": torch.randint(0, 64, (6, 9), generator=g),
            "attention_mask": torch.ones(6, 9, dtype=torch.long),
            "labels": torch.randint(0, 2, (6,), generator=g),
        }
        for _ in range(n)
    ]


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_every_pruner_reaches_target_and_keeps_zeros(name: str) -> None:
    model = tiny_bert(seed=5)
    batches = _batches()
    kw = {"window": 4, "final_exact": True} if issubclass(PRUNERS[name], GradualPruner) else {}
    pruner = make_pruner(name, model, 0.75, **kw)
    if pruner.needs_pre_pruning:
        pruner.prune_before_training(batches)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for i in range(6):
        opt.zero_grad()
        model(**batches[i % 3]).loss.backward()
        opt.step()
        pruner.step()
    assert pruner.mask.num_pruned == round(0.75 * pruner.numel)
    for n, p in pruner.params.items():
        assert bool((p.detach()[~pruner.mask[n]] == 0).all())


def test_magnitude_keeps_largest_weights() -> None:
    model = tiny_bert(seed=6)
    pruner = MagnitudePruner(model, 0.5)
    weights = {n: p.detach().abs().clone() for n, p in pruner.params.items()}
    pruner.prune_before_training()
    kept = torch.cat([weights[n][pruner.mask[n]] for n in pruner.names])
    gone = torch.cat([weights[n][~pruner.mask[n]] for n in pruner.names])
    assert float(kept.min()) >= float(gone.max())


def test_random_is_seeded_and_roughly_uniform() -> None:
    a = RandomPruner(tiny_bert(seed=7), 0.6, seed=3)
    b = RandomPruner(tiny_bert(seed=7), 0.6, seed=3)
    c = RandomPruner(tiny_bert(seed=7), 0.6, seed=4)
    for p in (a, b, c):
        p.prune_before_training()
    assert a.mask == b.mask
    assert a.mask != c.mask
    per_layer = [r["sparsity"] for r in a.mask.report()]
    assert max(abs(s - 0.6) for s in per_layer) < 0.1


def test_snip_score_is_abs_weight_times_summed_gradient() -> None:
    """SnipPruner (maskloop.scores.snip): |W * sum_b g_b| over n_batches batches."""
    model = tiny_bert(seed=8)
    batches = _batches(2)
    pruner = SnipPruner(model, 0.5, n_batches=2)
    grads = {n: torch.zeros_like(p) for n, p in pruner.params.items()}
    for b in batches:
        model.zero_grad()
        model(**b).loss.backward()
        for n, p in pruner.params.items():
            grads[n] += p.grad
    model.zero_grad()
    scores = pruner.compute_scores(batches, None)
    for s, (n, p) in zip(scores, pruner.params.items()):
        torch.testing.assert_close(s, (p.detach() * grads[n]).abs())


def test_grasp_score_is_weight_times_hessian_gradient_product() -> None:
    torch.manual_seed(0)
    # float64: the score and the reference take different autograd paths to the Hessian product
    model = tiny_bert(seed=9, hidden_size=16, intermediate_size=16).double()
    batches = _batches(1)
    pruner = GraspPruner(model, 0.5, temperature=2.0, targets=r"layer\.0\.intermediate")
    ((name, w),) = pruner.params.items()

    def loss_of(weight: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(
            model, {name: weight}, kwargs={k: v for k, v in batches[0].items() if k != "labels"}
        )
        return torch.nn.functional.cross_entropy(out.logits / 2.0, batches[0]["labels"])

    wd = w.detach().clone()
    g = torch.autograd.grad(loss_of(wd.requires_grad_()), wd)[0]
    _, hg = torch.autograd.functional.hvp(loss_of, w.detach().clone(), g)
    (score,) = pruner.compute_scores(batches, None)
    # scores are stored in float32: equal up to that one rounding (2**-24 relative)
    torch.testing.assert_close(score.double(), w.detach() * hg, rtol=1e-6, atol=1e-12)


def _manual(pruner: GradualPruner, steps: int, seed: int = 0):
    """Feed hand-made weights and gradients; return them."""
    gen = torch.Generator().manual_seed(seed)
    hist = []
    for _ in range(steps):
        ws, gs = [], []
        for n, p in pruner.params.items():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * pruner.mask[n])
            p.grad = torch.randn(p.shape, generator=gen)
            ws.append(p.detach().clone())
            gs.append(p.grad.clone())
        pruner.step()
        hist.append((ws, gs))
    return hist


def test_taylor_uses_only_the_current_step() -> None:
    pruner = TaylorPruner(tiny_bert(seed=10), 0.5, window=50)
    hist = _manual(pruner, 3)
    ws, gs = hist[-1]
    for s, w, g, n in zip(pruner.state["S"], ws, gs, pruner.names):
        keep = pruner.mask[n]
        torch.testing.assert_close(s[keep], (w * g).abs()[keep])


def test_movement_scores_at_the_weights_the_gradient_was_computed_at() -> None:
    """MovementPruner: S = -sum_t W_t * g_t with W_t the weights before optimizer.step()."""
    model = tiny_bert(seed=11)
    pruner = MovementPruner(model, 0.5, start=1, window=50)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    batches = _batches(4, seed=3)
    pre_ref = [torch.zeros_like(p) for p in pruner.params.values()]
    post_ref = [torch.zeros_like(p) for p in pruner.params.values()]
    for t in range(5):
        opt.zero_grad()
        model(**batches[t % 4]).loss.backward()
        before = [p.detach().clone() for p in pruner.params.values()]
        opt.step()
        pruner.step()
        if t >= 1:  # the window starts at step 1
            for i, p in enumerate(pruner.params.values()):
                pre_ref[i] -= before[i] * p.grad
                post_ref[i] -= p.detach() * p.grad
    differs = False
    for i, n in enumerate(pruner.names):
        keep = pruner.mask[n]
        torch.testing.assert_close(pruner.state["S"][i][keep], pre_ref[i][keep])
        differs |= not torch.allclose(pre_ref[i][keep], post_ref[i][keep])
    assert differs  # the post-step weights would have given other scores


def test_gradual_magnitude_keeps_largest_current_weights_on_the_cubic_schedule() -> None:
    """GradualMagnitudePruner: each cut keeps the n_keep(k) largest |W| among the alive weights."""
    model = tiny_bert(seed=15)
    pruner = GradualMagnitudePruner(model, 0.8, start=0, window=5, min_density=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batches = _batches(3)
    for t in range(6):
        opt.zero_grad()
        model(**batches[t % 3]).loss.backward()
        opt.step()
        alive = {n: pruner.mask[n].clone() for n in pruner.names}
        w = {n: p.detach().abs().clone() for n, p in pruner.params.items()}
        pruner.step()
        if t <= pruner.last_k:
            kept = torch.cat([w[n][pruner.mask[n]] for n in pruner.names])
            gone = torch.cat([w[n][alive[n] & ~pruner.mask[n]] for n in pruner.names])
            assert pruner.numel - pruner.mask.num_pruned == pruner.n_keep(t)
            if gone.numel():
                assert float(kept.min()) >= float(gone.max())
    per_layer = GradualMagnitudePruner(tiny_bert(seed=15), 0.8, window=3, scope="layer")
    assert per_layer.scope == "layer"


def test_platon_matches_its_equations() -> None:
    b1, b2 = 0.85, 0.95
    pruner = PlatonPruner(tiny_bert(seed=12), 0.5, window=50)
    hist = _manual(pruner, 4)
    for i, n in enumerate(pruner.names):
        i_bar = torch.zeros_like(hist[0][0][i])
        u = torch.zeros_like(i_bar)
        for w, g in hist:
            imp = (w[i] * g[i]).abs()
            i_bar = b1 * i_bar + (1 - b1) * imp
            u = b2 * u + (1 - b2) * (imp - i_bar).abs()
        keep = pruner.mask[n]
        torch.testing.assert_close(
            pruner.state["S"][i][keep], (i_bar * u)[keep], rtol=1e-5, atol=1e-8
        )


def test_ablation_has_no_moments() -> None:
    p = SevenNoConsistencyPruner(tiny_bert(seed=13), 0.5, window=10)
    assert p.state_names == ("S",)
    with pytest.raises(TypeError, match="consistency"):
        SevenNoConsistencyPruner(tiny_bert(seed=13), 0.5, consistency=True)


def test_gradual_schedule_is_shared() -> None:
    a = TaylorPruner(tiny_bert(seed=14), 0.8, window=7)
    assert [a.n_keep(k) for k in range(6)] == [
        math.floor(((0.2) + 0.8 * (1 - (k + 1) / 7) ** 3) * a.numel + 1e-9) for k in range(6)
    ]


def test_a_pre_step_rule_that_rezeroes_its_weights_still_rezeroes_the_live_ones() -> None:
    """GradualPruner: a weights_at='pre' rule zeroing the snapshot it gets leaves no live weight alive."""

    class ZeroingMovement(MovementPruner):
        def update_scores(self, weights, grads, k):  # type: ignore[no-untyped-def]
            super().update_scores(weights, grads, k)
            for w, n in zip(weights, self.names):
                w.mul_(self.mask[n])  # zeroes the pre-step snapshot, not the parameters
            return True

    model = tiny_bert(seed=12)
    pruner = ZeroingMovement(model, 0.5, start=0, window=6, delta_t=2)  # steps without a cut
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    batches = _batches(3, seed=4)
    for t in range(4):
        opt.zero_grad()
        model(**batches[t % 3]).loss.backward()
        opt.step()
        with torch.no_grad():  # an optimizer the mask does not know revives pruned weights
            torch._foreach_add_(list(pruner.params.values()), 0.01)
        pruner.step()
        for n, p in pruner.params.items():
            assert torch.count_nonzero(p.detach()[~pruner.mask[n]]) == 0, (t, n)
