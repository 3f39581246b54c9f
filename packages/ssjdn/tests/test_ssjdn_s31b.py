"""Issue 19, session 31b: ``+bidirectional centered complement``, today's bidirectional row with
the coarse->fine pass guided by the complement of the fine->coarse guide (rule
``docs/benchmarks/ssjdn_validation_s31b_rule.md``)."""

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from ssjdn import SSJDNConfig
from ssjdn.baselines import ABLATION_LADDER, VARIANTS, ablation_config
from ssjdn.bench import PEER, method_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

NEW = "+bidirectional centered complement"
TODAY = "+bidirectional centered"
ONE = "+SGS (one direction) centered"


def test_the_new_row_is_todays_bidirectional_row_with_one_change() -> None:
    got = ablation_config(NEW)
    assert got == dataclasses.replace(ablation_config(TODAY), sgs_guide_c2f="complement")
    assert got != ablation_config(TODAY)
    # the library default is unchanged in this session (the lead decides)
    assert SSJDNConfig().sgs_guide_c2f == "same"
    assert SSJDNConfig().sgs_pool == "centered"


def test_every_method_defined_before_keeps_its_cache_key(method_keys: Callable) -> None:
    keys_before = method_keys(exclude=[NEW])
    now = {name: method_key(name) for name in [*ABLATION_LADDER, PEER, *VARIANTS]}
    assert {k: now[k] for k in keys_before} == keys_before
    assert set(now) - set(keys_before) == {NEW}
    assert now[NEW] == method_keys()[NEW]
    assert now[NEW] not in keys_before.values()


def test_rule_s31b_reads_seeds_80_to_84(tmp_path, capsys, write_val_runs: Callable) -> None:
    one = [14.0, 15.0, 16.0, 14.5, 15.5]
    today = [v + 0.2 for v in one]
    up = [v + 1.0 + 0.05 * i for i, v in enumerate(one)]
    seeds = range(80, 85)
    write_val_runs(tmp_path, {ONE: one, NEW: up}, seeds)
    assert decide.main(["--rule", "s31b_complement", "--cache", str(tmp_path)]) == 0
    assert "K1 pass; partial (K2 lacks seeds)" in capsys.readouterr().out
    write_val_runs(tmp_path, {TODAY: today}, seeds)
    assert decide.main(["--rule", "s31b_complement", "--cache", str(tmp_path)]) == 0
    assert "ADOPTED on validation: K1 and K2 pass" in capsys.readouterr().out
    # above today's row on the mean (+0.06, the CI spanning 0) passes K2: mean >= 0 alone
    write_val_runs(tmp_path, {TODAY: [v - 0.3 * (-1) ** i for i, v in enumerate(up)]}, seeds)
    assert decide.main(["--rule", "s31b_complement", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ADOPTED on validation: K1 and K2 pass" in out
    # below today's row on the mean fails K2, though K1 passes
    write_val_runs(tmp_path, {TODAY: [v + 0.1 for v in up]}, seeds)
    assert decide.main(["--rule", "s31b_complement", "--cache", str(tmp_path)]) == 0
    assert "K2 fails (" in capsys.readouterr().out
    # a rung level with the one below fails K1 (runs of seeds 75..79 are not read)
    write_val_runs(tmp_path, {NEW: one}, seeds)
    write_val_runs(tmp_path, {NEW: up, ONE: one}, range(75, 80))
    assert decide.main(["--rule", "s31b_complement", "--cache", str(tmp_path)]) == 0
    assert "K1 fails (" in capsys.readouterr().out
    # a seed missing: partial
    for f in tmp_path.glob("val/*/*seed84.json"):
        f.unlink()
    assert decide.main(["--rule", "s31b_complement", "--cache", str(tmp_path)]) == 0
    assert "partial (K1 lacks seeds)" in capsys.readouterr().out
