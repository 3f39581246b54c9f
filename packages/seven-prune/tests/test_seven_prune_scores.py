"""SEVEN's importance, schedule and masking against direct computations of the spec's formulas."""

import math

import numpy as np
import pytest
import torch
from maskloop import WeightMask, schedules
from seven_prune import SevenPruner, select_global
from seven_prune.models import tiny_bert
from torch import nn


class Toy(nn.Module):
    """Two Linear layers named like an encoder block."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([nn.Module()])
        self.encoder.layer[0].query = nn.Linear(4, 3)
        self.encoder.layer[0].dense = nn.Linear(3, 5)
        self.head = nn.Linear(5, 2)


def _reference(ws, gs, sparsity, window, a1, a2, moments="abs", eps=1e-9):
    """Direct float64 implementation of the spec's SEVEN_dyn rule over hand-made sequences."""
    n = sum(w.size for w in ws[0])
    m = [np.zeros_like(w) for w in ws[0]]
    v = [np.zeros_like(w) for w in ws[0]]
    s = [np.zeros_like(w) for w in ws[0]]
    mask = [np.ones_like(w, dtype=bool) for w in ws[0]]
    r_f = 1 - sparsity
    history = []
    for k in range(window - 1):
        for i in range(len(s)):
            w, g = ws[k][i], gs[k][i]
            gm = np.abs(g) if moments == "abs" else g
            m[i] = a1 * m[i] + (1 - a1) * gm
            v[i] = a2 * v[i] + (1 - a2) * g**2
            m_hat = m[i] / (1 - a1 ** (k + 1))
            v_hat = v[i] / (1 - a2 ** (k + 1))
            s[i] = s[i] + np.abs(w * g * m_hat / (np.sqrt(v_hat) + eps))
            s[i][~mask[i]] = 0
        r_k = r_f + (1 - r_f) * (1 - (k + 1) / window) ** 3
        n_keep = math.floor(r_k * n)
        flat = np.concatenate([x.ravel() for x in s])
        thr = np.sort(flat)[::-1][n_keep - 1]
        mask = [x >= thr for x in s]
        history.append(([x.copy() for x in s], [x.copy() for x in m], [x.copy() for x in mask]))
    return history


@pytest.mark.parametrize("moments", ["abs", "signed"])
def test_importance_matches_direct_formula(moments: str) -> None:
    model = Toy()
    window, sparsity, a1, a2 = 6, 0.6, 0.8, 0.9
    pruner = SevenPruner(
        model,
        sparsity,
        start=2,
        window=window,
        alpha1=a1,
        alpha2=a2,
        moments=moments,
        targets=r"encoder\.",
    )
    params = list(pruner.params.values())
    rng = np.random.default_rng(0)
    steps = 2 + window + 2
    ws = [[rng.normal(size=p.shape) for p in params] for _ in range(steps)]
    gs = [[rng.normal(size=p.shape) for p in params] for _ in range(steps)]
    ref = _reference(ws[2:], gs[2:], sparsity, window, a1, a2, moments)
    for t in range(steps):
        with torch.no_grad():
            for p, w, g in zip(params, ws[t], gs[t]):
                p.copy_(torch.tensor(w, dtype=torch.float32))
                p.grad = torch.tensor(g, dtype=torch.float32)
        before = pruner.mask.state_dict()
        pruner.step()
        k = t - 2
        if 0 <= k < window - 1:
            s_ref, m_ref, mask_ref = ref[k]
            for i, name in enumerate(pruner.names):
                np.testing.assert_allclose(
                    pruner.state["S"][i].numpy(), s_ref[i], rtol=2e-5, atol=1e-6
                )
                np.testing.assert_allclose(
                    pruner.state["m"][i].numpy(), m_ref[i], rtol=1e-5, atol=1e-7
                )
                assert np.array_equal(pruner.mask[name].numpy(), mask_ref[i]), (t, name)
        else:  # outside the window the mask does not change
            assert pruner.mask == WeightMask(before)
    # the weights of pruned entries are zero
    for name, p in pruner.params.items():
        assert bool((p.detach()[~pruner.mask[name]] == 0).all())
    # the head is not a target and stays dense
    assert "head.weight" not in pruner.names


def test_ablation_is_accumulated_taylor() -> None:
    model = Toy()
    pruner = SevenPruner(model, 0.5, window=20, consistency=False, targets=r"encoder\.")
    params = list(pruner.params.values())
    torch.manual_seed(0)
    acc = [torch.zeros_like(p) for p in params]
    for _ in range(3):
        for p, a, name in zip(params, acc, pruner.names):
            with torch.no_grad():
                p.copy_(torch.randn_like(p) * pruner.mask[name])
            p.grad = torch.randn_like(p)
            a += (p.detach() * p.grad).abs()
        pruner.step()
        for a, name in zip(acc, pruner.names):
            a *= pruner.mask[name]
    for s, a, name in zip(pruner.state["S"], acc, pruner.names):
        keep = pruner.mask[name]
        torch.testing.assert_close(s[keep], a[keep])


@pytest.mark.parametrize(("window", "delta_t"), [(8, 1), (9, 3), (1, 1)])
def test_exact_sparsity_per_schedule_step(window: int, delta_t: int) -> None:
    model = tiny_bert(seed=1)
    sparsity, start = 0.7, 1
    pruner = SevenPruner(model, sparsity, start=start, window=window, delta_t=delta_t)
    n = pruner.numel
    sched = schedules.cubic(1.0, 1 - sparsity, 0, window)
    last_k = max(window - 2, 0)
    x = torch.randint(0, 64, (8, 12))
    y = torch.randint(0, 2, (8,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    expected_pruned = 0
    for t in range(start + window + 2):
        opt.zero_grad()
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        pruner.step()
        k = t - start
        if 0 <= k <= last_k and ((k + 1) % delta_t == 0 or k == last_k):
            r_k = (1 - sparsity) + sparsity * (1 - (k + 1) / window) ** 3
            assert math.isclose(pruner.keep_ratio(k), r_k, rel_tol=1e-12)
            assert math.isclose(sched(k + 1), r_k, rel_tol=1e-12)
            expected_pruned = n - math.floor(r_k * n + 1e-9)
            if window == 1:
                expected_pruned = round(sparsity * n)
        assert pruner.mask.num_pruned == expected_pruned, t
    assert abs(pruner.achieved_sparsity - sparsity) <= sparsity / window**3 + 1 / n


def test_final_exact_reaches_target() -> None:
    model = tiny_bert(seed=2)
    pruner = SevenPruner(model, 0.9, window=4, final_exact=True)
    x, y = torch.randint(0, 64, (4, 8)), torch.tensor([0, 1, 0, 1])
    for _ in range(6):
        model.zero_grad()
        model(input_ids=x, labels=y).loss.backward()
        pruner.step()
    assert pruner.mask.num_pruned == round(0.9 * pruner.numel)


def test_pruned_weights_never_come_back() -> None:
    torch.manual_seed(0)
    model = tiny_bert(seed=3)
    keys = list(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    pruner = SevenPruner(model, 0.8, start=2, window=12)
    x, y = torch.randint(0, 64, (16, 10)), torch.randint(0, 2, (16,))
    prev = pruner.mask.state_dict()
    for _ in range(30):
        opt.zero_grad()
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        pruner.step()
        for name, m in pruner.mask.items():
            assert not bool((m & ~prev[name]).any()), "a pruned weight was revived"
            assert bool((pruner.params[name].detach()[~m] == 0).all())
        prev = pruner.mask.state_dict()
    assert pruner.done
    assert pruner.achieved_sparsity > 0.79
    assert list(model.state_dict()) == keys  # state_dict keys unchanged


def test_select_global_matches_weightmask_from_scores_with_ties() -> None:
    torch.manual_seed(0)
    scores = {"a": torch.randint(0, 4, (5, 7)).float(), "b": torch.randint(0, 4, (11,)).float()}
    prev = WeightMask({"a": torch.rand(5, 7) > 0.2, "b": torch.rand(11) > 0.2})
    for n_keep in (1, 5, 17, 30, 46):
        ours = select_global(scores, n_keep, previous=prev, warn=False)
        ref = WeightMask.from_scores(scores, 1 - n_keep / 46, previous=prev, min_density=0)
        assert ours == ref
        assert ours.numel - ours.num_pruned == n_keep
    with pytest.raises(ValueError, match="n_keep"):
        select_global(scores, 47)


def test_state_dict_resumes_mid_schedule(tmp_path) -> None:
    x, y = torch.randint(0, 64, (8, 10)), torch.randint(0, 2, (8,))

    def run(model, opt, pruner, steps):
        for _ in range(steps):
            opt.zero_grad()
            model(input_ids=x, labels=y).loss.backward()
            opt.step()
            pruner.step()

    def build():
        model = tiny_bert(seed=4)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        return model, opt, SevenPruner(model, 0.6, start=1, window=10, delta_t=2)

    m1, o1, p1 = build()
    run(m1, o1, p1, 12)
    m2, o2, p2 = build()
    run(m2, o2, p2, 5)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": m2.state_dict(), "opt": o2.state_dict(), "pruner": p2.state_dict()}, path)
    m3, o3, p3 = build()
    ck = torch.load(path, weights_only=True)
    m3.load_state_dict(ck["model"])
    o3.load_state_dict(ck["opt"])
    p3.load_state_dict(ck["pruner"])
    assert p3.t == 5
    run(m3, o3, p3, 7)
    assert p3.mask == p1.mask
    for a, b in zip(p3.state["S"], p1.state["S"]):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="differently configured"):
        SevenPruner(tiny_bert(seed=4), 0.5, start=1, window=10, delta_t=2).load_state_dict(
            ck["pruner"]
        )


def test_consistency_factor_near_one_for_consistent_gradients() -> None:
    model = Toy()
    pruner = SevenPruner(model, 0.5, window=50, targets=r"encoder\.", moments="signed")
    params = list(pruner.params.values())
    torch.manual_seed(0)
    for _ in range(5):
        for i, p in enumerate(params):
            g = torch.ones_like(p)
            if i == 1:  # the second tensor gets sign-flipping noise
                g = torch.randn_like(p) * 3
            p.grad = g
        pruner.step()
    c = pruner.consistency_factor()
    assert torch.allclose(c[0], torch.ones_like(c[0]), atol=1e-6)
    assert float(c[1].abs().mean()) < 0.6


def test_fused_update_equals_the_eager_update() -> None:
    """SevenPruner(fused=True): the compiled one-pass update gives the eager m, v, S and masks."""
    torch.manual_seed(0)
    eager = SevenPruner(Toy(), 0.5, start=0, window=8, targets=r"encoder\.", min_density=0.0)
    fused = SevenPruner(Toy(), 0.5, start=0, window=8, targets=r"encoder\.", min_density=0.0)
    fused.fused = True  # built alike, so both start from the same state
    for _ in range(7):
        ws = [torch.randn(p.shape, dtype=torch.float64) for p in eager.params.values()]
        gs = [torch.randn(p.shape, dtype=torch.float64) for p in eager.params.values()]
        for pr in (eager, fused):
            for p, w, g, n in zip(pr.params.values(), ws, gs, pr.names):
                with torch.no_grad():
                    p.copy_(w.float() * pr.mask[n])
                p.grad = g.float()
            pr.step()
    for key in ("m", "v", "S"):
        torch.testing.assert_close(fused.flat[key], eager.flat[key], rtol=1e-5, atol=1e-7)
    assert fused.mask == eager.mask
