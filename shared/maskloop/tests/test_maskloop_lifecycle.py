"""MaskedTraining's lifecycle (attach / set_mask / detach) and its exactness against dense training."""

import pytest
import torch
from maskloop import Callback, MaskedTraining, WeightMask, fit, prunable_parameters
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytestmark = pytest.mark.usefixtures("float64")


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def rand_mask(model, sparsity=0.7, seed=1) -> WeightMask:
    g = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()}
    return WeightMask.from_scores(scores, sparsity)


def data(n=48, seed=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())


def grads_pruned_nonzero(model, mask) -> bool:
    model.zero_grad()
    model(torch.randn(4, 6)).pow(2).sum().backward()
    return any((p.grad[~mask[n]] != 0).any() for n, p in model.named_parameters() if n in mask)


def test_construction_does_not_touch_the_model_and_fit_attaches_then_detaches() -> None:
    model = net()
    mask = rand_mask(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    guard = MaskedTraining(model, mask)
    assert not guard.attached
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert grads_pruned_nonzero(model, mask)  # no gradient hooks yet
    seen = []

    class Probe(Callback):
        def on_after_backward(self, state):
            seen.append(guard.attached)

    opt = torch.optim.Adam(model.parameters(), 1e-2)
    fit(model, DataLoader(data(), batch_size=16), epochs=2, optimizer=opt,
        callbacks=[guard, Probe()], progress=False)  # fmt: skip
    assert seen == [True] * 6 and not guard.attached
    assert grads_pruned_nonzero(model, mask)  # detached at the end of fit
    for n, p in model.named_parameters():
        if n in mask:
            assert torch.all(p[~mask[n]] == 0) and (p[mask[n]] != before[n][mask[n]]).any()
    # the optimizer's held second moments went back to 0 on detach
    v = opt.state[model[0].weight]["exp_avg_sq"]
    assert torch.all(v[~mask["0.weight"]] == 0)


def test_context_manager_and_mask_only_constructor() -> None:
    model = net()
    mask = rand_mask(model)
    with MaskedTraining(mask).attach(model) as guard:
        assert guard.attached and not grads_pruned_nonzero(model, mask)
    assert grads_pruned_nonzero(model, mask)
    with MaskedTraining(model, mask) as guard:
        assert guard.attached
    assert not guard.attached
    with pytest.raises(ValueError, match="needs a model"):
        MaskedTraining(mask).attach()
    with pytest.raises(ValueError, match="does not have"):
        MaskedTraining(nn.Linear(2, 2), mask)
    with pytest.raises(ValueError, match="reapply"):
        MaskedTraining(model, mask, reapply="never")


def _train(model, mask, opt, steps, dense_reference: bool, swap=None, **kw):
    """Train on fresh batches; the dense reference masks gradients by hand (the masked problem)."""
    g = torch.Generator().manual_seed(5)
    guard = None if dense_reference else MaskedTraining(model, mask, opt, **kw).attach()
    if dense_reference:
        mask.apply_(model)
    for t in range(steps):
        if swap is not None and t == steps // 2:
            mask = swap
            if guard is None:
                mask.apply_(model)
                for n, p in model.named_parameters():  # a fresh dense optimizer state for them
                    if n in mask:
                        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer",
                                    "square_avg", "grad_avg"):  # fmt: skip
                            if key in opt.state[p]:
                                opt.state[p][key].masked_fill_(~mask[n], 0.0)
            else:
                guard.set_mask(swap)
        x = torch.randn(16, 6, generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long()).backward()
        if guard is None:
            for n, p in model.named_parameters():
                if n in mask:
                    p.grad.masked_fill_(~mask[n], 0.0)
        opt.step()
        for n, p in model.named_parameters():
            if n in mask:
                assert torch.all(p[~mask[n]] == 0), (t, n)
    if guard is not None:
        guard.detach()
    return model


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.Adam(p, 1e-2),
        lambda p: torch.optim.AdamW(p, 1e-2, weight_decay=0.1, amsgrad=True),
        lambda p: torch.optim.SGD(p, 0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: torch.optim.RMSprop(p, 1e-2, momentum=0.5),
    ],
    ids=["adam", "adamw-amsgrad", "sgd-nesterov", "rmsprop"],
)
@pytest.mark.parametrize("reapply", ["auto", "always"])
def test_bit_identical_to_dense_training_on_the_masked_problem(make, reapply) -> None:
    mask, other = rand_mask(net()), rand_mask(net(), 0.5, seed=9)
    a = net()
    opt_a = make(a.parameters())
    _train(a, mask, opt_a, 12, dense_reference=False, swap=other, reapply=reapply, refresh_every=5)
    b = net()
    opt_b = make(b.parameters())
    _train(b, mask, opt_b, 12, dense_reference=True, swap=other)
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), n
    if reapply == "always":
        return  # the legacy mode leaves optimizer state alone (warm moments of pruned entries)
    for pa, pb in zip(a.parameters(), b.parameters()):  # after detach the states agree too
        for key, t in opt_a.state[pa].items():
            assert torch.equal(t, opt_b.state[pb][key]), key


def test_pruned_second_moments_are_held_and_refreshed() -> None:
    model = net()
    mask = rand_mask(model)
    opt = torch.optim.Adam(model.parameters(), 1e-2, betas=(0.9, 0.5))
    guard = MaskedTraining(model, mask, opt, second_moment=2.0, refresh_every=3).attach()
    # held at 2 after the first step (state exists), decays by beta2 = 0.5, refreshed every 3 steps
    for step, expected in zip(range(1, 7), [2.0, 1.0, 2.0, 1.0, 0.5, 2.0]):
        opt.zero_grad()
        model(torch.randn(4, 6)).pow(2).sum().backward()
        opt.step()
        v = opt.state[model[2].weight]["exp_avg_sq"][~mask["2.weight"]]
        assert torch.all(v == expected), step
    guard.detach()


def test_unknown_optimizer_gets_reapplied_after_every_step() -> None:
    class MyAdam(torch.optim.Adam):  # not in SAFE_OPTIMIZERS: may move zero-gradient weights
        pass

    model = net()
    mask = rand_mask(model)
    opt = MyAdam(model.parameters(), 1e-2)
    with torch.no_grad():
        model(torch.randn(4, 6))
    with MaskedTraining(model, mask, opt):
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(4, 6)).pow(2).sum().backward()
            for p in model.parameters():
                p.grad.add_(1.0)  # something after the hook revives pruned gradients
            opt.step()
            for n, p in model.named_parameters():
                if n in mask:
                    assert torch.all(p[~mask[n]] == 0)


def test_set_mask_in_a_callback_swaps_mid_training() -> None:
    model = net()
    first, second = rand_mask(model, 0.8, seed=1), rand_mask(model, 0.6, seed=2)
    guard = MaskedTraining(model, first)

    class Swap(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 1:
                guard.set_mask(second)

    fit(model, DataLoader(data(), batch_size=16), epochs=2,
        optimizer=torch.optim.Adam(model.parameters(), 1e-2), callbacks=[guard, Swap()],
        progress=False)  # fmt: skip
    assert guard.mask == second
    revived = {n: second[n] & ~first[n] for n in second}
    for n, p in model.named_parameters():
        if n in second:
            assert torch.all(p[~second[n]] == 0)
            assert (p[revived[n]] != 0).any()  # revived weights trained
    with pytest.raises(ValueError, match="differing names"):
        guard.set_mask(WeightMask({"x": torch.ones(2, dtype=torch.bool)}))


def test_kept_entries_without_gradient_are_floored_and_stay_exact() -> None:
    """A kept weight of a dead unit has a zero second moment (slow `sqrt` on x86): it is held at a
    tiny floor while its gradient is 0, and once the unit wakes the run is still bit for bit the
    dense Adam run on the masked problem; detach restores the dense optimizer's zero."""
    torch.manual_seed(0)
    runs = []
    for guarded in (True, False):
        torch.manual_seed(0)
        model = nn.Linear(6, 3)
        mask = rand_mask(model)
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        guard = MaskedTraining(model, mask, opt).attach() if guarded else mask.apply_(model)
        g = torch.Generator().manual_seed(1)
        for step in range(8):
            x = torch.randn(16, 6, generator=g)
            if step < 4:
                x[:, 2] = 0.0  # input 2 is dead: column 2's kept weights get exact-zero gradients
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long()).backward()
            if not guarded:
                model.weight.grad.masked_fill_(~mask["weight"], 0.0)
            opt.step()
            if guarded and step == 2:
                v = opt.state[model.weight]["exp_avg_sq"]
                dead = mask["weight"][:, 2]
                assert dead.any()
                floor = 1e-30 if v.dtype == torch.float32 else 1e-200
                assert torch.all(v[:, 2][dead] > 0) and torch.all(v[:, 2][dead] <= floor)
        if guarded:
            guard.detach()
        runs.append((model, opt))
    (a, opt_a), (b, opt_b) = runs
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(opt_a.state[a.weight][key], opt_b.state[b.weight][key]), key


@pytest.mark.parametrize("opt_name", ["Adam", "AdamW", "SGD"])
def test_a_shrinking_set_mask_keeps_weights_those_of_reapplying_every_step_float64(
    opt_name: str,
) -> None:
    """A swap that only prunes fixes only the newly pruned first moments (one multiply): the
    weights after further steps equal, in float64, those of `reapply="always"` (the mask multiplied
    in after every step, no optimizer-state fix), pruned weights stay exactly 0 and their first
    moments are 0 (a revival resets moments, which `reapply="always"` does not: not compared)."""
    make = {
        "Adam": lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=0.1),
        "AdamW": lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.1),
        "SGD": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.1),
    }[opt_name]
    gen = torch.Generator().manual_seed(5)
    x, y = (
        torch.randn(32, 12, generator=gen, dtype=torch.float64),
        torch.randn(32, 3, generator=gen),
    )
    masks = []
    for density in (1.0, 0.6, 0.3):  # two swaps that only prune
        keep = torch.rand(3, 12, generator=gen) < density if density < 1 else torch.ones(3, 12)
        masks.append(WeightMask({"weight": keep.bool()}))
    masks[2] = masks[1] & masks[2]  # a subset: the second swap only prunes too
    runs = {}
    for reapply in ("auto", "always"):
        torch.manual_seed(0)
        model = nn.Linear(12, 3).double()
        opt = make(model.parameters())
        mt = MaskedTraining(model, masks[0], opt, reapply=reapply).attach()
        for i in range(12):
            if i in (3, 6):
                mt.set_mask(masks[i // 3])
            opt.zero_grad(set_to_none=True)
            ((model(x) - y.double()) ** 2).mean().backward()
            opt.step()
        runs[reapply] = (model, opt, mt)
    (m_auto, o_auto, mt_auto), (m_always, _, _) = runs["auto"], runs["always"]
    assert mt_auto.holds_zeros
    assert torch.equal(m_auto.weight, m_always.weight) and torch.equal(m_auto.bias, m_always.bias)
    pruned = ~mt_auto.mask["weight"]
    assert bool(pruned.any()) and bool((m_auto.weight[pruned] == 0).all())
    first = "exp_avg" if opt_name != "SGD" else "momentum_buffer"
    assert bool((o_auto.state[m_auto.weight][first][pruned] == 0).all())


def test_revives_reads_words_and_the_tail() -> None:
    """`_revives` (new & ~old).any() by 64-bit words: a revived entry in the words, in the tail
    (sizes not a multiple of 8), none, and a shrink."""
    from maskloop.masks import _revives

    for n in (5, 8, 37, 64):
        old = torch.arange(n) % 3 != 0
        assert not _revives(old.clone(), old)
        assert not _revives(old & (torch.arange(n) % 2 == 0), old)  # only prunes
        for i in (0, n - 1):  # a word entry and the last entry (the tail when n % 8)
            new = old.clone()
            new[i] = ~old[i]
            assert _revives(new, old) == bool(new[i]), (n, i)
        assert _revives(old.reshape(-1, 1).expand(n, 2)[:, 0] | True, old)  # not contiguous


def test_revives_stacked_equals_one_at_a_time() -> None:
    """`_revives_stacked` (the one-copy path for a GPU, run here on CPU tensors) gives `_revives`'s
    answer for every pair: revived in the middle, at the end, none, only pruned; `_revives_all` on
    CPU tensors too, and both of an empty list."""
    from maskloop.masks import _revives, _revives_all, _revives_stacked

    pairs = []
    for n in (5, 8, 37, 64):
        old = torch.arange(n) % 3 != 0
        pairs += [(old.clone(), old), (old & (torch.arange(n) % 2 == 0), old)]
        for i in (0, n // 2, n - 1):
            new = old.clone()
            new[i] = ~old[i]
            pairs.append((new, old))
    want = [_revives(a, b) for a, b in pairs]
    assert any(want) and not all(want)
    assert _revives_stacked(pairs) == want
    assert _revives_all(pairs) == want
    assert _revives_stacked([]) == [] and _revives_all([]) == []


def test_set_mask_finds_revived_entries_itself_and_resets_their_moments() -> None:
    """A swap that revives entries of one parameter and only prunes another: the revived entries'
    Adam moments are reset to 0 and the newly pruned first moments zeroed, with no word from the
    caller about which kind of swap it is."""
    model = net()
    first = rand_mask(model, 0.6, seed=1)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    mt = MaskedTraining(model, first, opt).attach()
    x, y = data().tensors
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    names = first.names
    second = {n: first[n].clone() for n in names}
    second[names[0]] = torch.ones_like(first[names[0]])  # revives every pruned entry
    second[names[1]] = first[names[1]] & (torch.rand(first[names[1]].shape) < 0.5)  # prunes
    params = dict(model.named_parameters())
    m1_before = opt.state[params[names[1]]]["exp_avg"].clone()
    mt.set_mask(WeightMask(second))
    st0, st1 = opt.state[params[names[0]]], opt.state[params[names[1]]]
    revived = ~first[names[0]]
    assert bool(revived.any())
    # reset as for a weight that never had a gradient: 0, the second moment at its tiny floor
    # (pruned, it was held at 1.0; a swap taken for one that only prunes would leave ~0.97)
    assert torch.all(st0["exp_avg"][revived] == 0)
    assert torch.all(st0["exp_avg_sq"][revived] <= 1e-200)
    assert torch.equal(st1["exp_avg"], m1_before * second[names[1]])
