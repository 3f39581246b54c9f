"""What issue 19's sessions tried, rejected on validation and retired from the library.

Readings of BSD and LSD that validation rejected (each under a rule committed before its runs)
stayed in the code as off-by-default options until 2026-12-05, when they were retired: their
code, tests, bench rows, rules and per-session scripts are at commit `RETIRED_AT`
(``git show e375864:packages/ssjdn/src/ssjdn/ssjdn.py`` and the other files reproduce them), and
their figures stay in the package README and ``docs/packages/ssjdn.md``.

`RETIRED_METHODS` keeps each retired bench row's cache key, so that the committed runs of a rule
that named one are still found (``scripts/decide.py`` reads them; ``ssjdn bench`` refuses to
train one). `RETIRED_OPTIONS` names the retired config fields with the value every kept model
has (a saved ``config.json`` holding that value loads; another value is refused by
`without_retired`), and `RETIRED_VALUES` the retired values of options that stay.

Session 33 (2026-12-05) retired STL's two rejected readings, ``stl_rho="predicted"`` (the margin
adapted by the agreement of LSD's predicted label distributions, -2.88 [-3.86, -1.87] mR on
validation) and ``stl_variant="sharpen"`` (same-class negatives' margin enlarged, m (1 + kappa
rho)). Each field then had one value left, so both fields went (`RETIRED_OPTIONS`). Unlike the
fields retired before, they were in every row's cache key at that value since the first
benchmark, so `RETIRED_IN_KEY` puts them back into the hash (`ssjdn.bench.method_key`): every
committed run keeps its key. Their code is at `RETIRED_AT` as well (and at 693d678).

Session 34 (2026-12-06) retired ``lsd_head_lr`` (LSD's heads at a multiple of the training lr,
session 33b; 10 was rejected by rule s33b on fresh validation seeds 90..94, H1 +0.56 [-0.11,
+1.23] mR), with its two bench rows. It entered the cache key only when switched on (the bench's
``ADDED_OPTIONS``), so the kept rows' keys do not change without it. Its code was never at
`RETIRED_AT`: `RETIRED_LATER` names the last commit that has it (7b1d953), and `retired_at`
gives, for any retired field, value or row, the commit whose code builds it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RETIRED_AT",
    "RETIRED_IN_KEY",
    "RETIRED_METHODS",
    "RETIRED_OPTIONS",
    "RETIRED_LATER",
    "RETIRED_VALUES",
    "retired_at",
    "without_retired",
]

#: the last commit with the retired readings' code
RETIRED_AT = "e375864"

#: retired config field -> its neutral value (the model of every kept row); ``None``: a
#: sub-option that acted only when its parent was switched on (any value is dropped)
RETIRED_OPTIONS: dict[str, Any] = {
    "sfe_contrast": "none",
    "sgs_sharpen": "none",
    "sgs_temperature": None,
    "sgs_topk": None,
    "sgs_fusion": "concat",
    "sgs_polarity_c2f": "same",
    "sgs_proj": "shared",
    "sgs_sequence": "parallel",
    "sgs_decorrelate": 0.0,
    "sgs_pass_scales": "all",
    "sgs_slot_norm": "none",
    "lsd_gate": "none",
    "lsd_schedule": "constant",
    "lsd_supervision": "joint",
    "lsd_without_stl": "same",
    "lsd_without_stl_mix": None,
    # session 33: STL's rejected readings (the fields had no other value left)
    "stl_rho": "label",
    "stl_variant": "relax",
    # session 34: LSD's heads' own lr (rejected by rule s33b); 1.0 = one lr for every parameter
    "lsd_head_lr": 1.0,
}

#: retired fields that were in every bench row's cache key (at their neutral value) from the
#: first benchmark on: `ssjdn.bench.method_key` hashes them at that value, so the keys stay
RETIRED_IN_KEY: dict[str, Any] = {"stl_rho": "label", "stl_variant": "relax"}

#: option that stays -> its retired values
RETIRED_VALUES: dict[str, tuple[Any, ...]] = {
    "sgs_pool": ("residual",),
    "sgs_guide_c2f": ("f2c_salience", "complement"),
    "lsd_combine": ("prior", "decouple"),
}

#: retired bench row -> its cache key (`ssjdn.bench.method_key` at `RETIRED_AT`)
RETIRED_METHODS: dict[str, str] = {
    "+SGS topk (one direction)": "10fdee8c",
    "+SGS softmax (one direction)": "6d2dfca4",
    "+LSD into encoders": "67b7a05a",
    "LSD into encoders": "7e730e36",
    "LSD prior": "27282149",
    "STL predicted": "92181f67",
    "+SGS keep-salient (one direction)": "2db40a67",
    "SGS keep-salient": "222eb329",
    "SFE standardize": "b2517912",
    "+SGS contrast (one direction)": "47760fb0",
    "SGS contrast": "31cfc30e",
    "+SGS contrast keep (one direction)": "07f45479",
    "SGS contrast keep": "e8bea984",
    "+bidirectional gate": "3cfb6cbb",
    "BSD gate": "a6ed47e8",
    "+LSD anneal": "6172a71b",
    "LSD anneal": "067d6b3b",
    "+SGS residual (one direction)": "f2d06952",
    "+bidirectional residual": "c3fb63c6",
    "SGS residual": "0753ff79",
    "+LSD aux": "d6f60f5f",
    "LSD aux": "60380869",
    "+bidirectional c2f suppress": "3633d2e9",
    "BSD c2f suppress": "1aef32db",
    "+bidirectional per-pass proj": "e81658f1",
    "+LSD per-pass proj": "4b6caebe",
    "BSD per-pass proj": "38329f26",
    "+bidirectional f2c guide": "29ccbaf3",
    "+LSD f2c guide": "23324ef9",
    "BSD f2c guide": "a7ddf04a",
    "+SGS proj 64 (one direction)": "a7bef84f",
    "+bidirectional sequential": "ea6d7470",
    "BSD sequential": "3faef384",
    "+bidirectional decorrelated": "5ab3c653",
    "BSD decorrelated": "f66b74bc",
    "dual-encoder proj 64": "7d4eb150",
    "+SFE proj 64": "5eb321c8",
    "+bidirectional proj 64": "9aea439a",
    "+LSD proj 64": "efdf35b4",
    "+STL proj 64 (full SSJDN)": "ef1c0c97",
    "+bidirectional mean": "db0b04c2",
    "BSD mean": "41948031",
    "+bidirectional complement": "b176fbd5",
    "BSD complement": "87bb076e",
    "+bidirectional split": "4b4011fa",
    "BSD split": "f48a32e1",
    "+bidirectional per-pass half proj": "1f9bb876",
    "BSD per-pass half proj": "d156b257",
    "+SGS (one direction) slot norm": "701de2a6",
    "+bidirectional slot norm": "330ead99",
    "BSD slot norm": "35827826",
    "+LSD labels only": "222e90bf",
    "BSD labels only": "13a49a50",
    "+LSD labels only prior": "37e859fc",
    "BSD labels only prior": "3fa7e568",
    "+LSD labels only prior mix 0.14": "f5d695c8",
    "BSD labels only prior mix 0.14": "3f89a417",
    "+LSD labels prior without STL": "f5411b23",
    "BSD labels prior without STL": "3a90496f",
    "+LSD decouple": "d619e407",
    "BSD decouple": "cb67dab5",
    "+bidirectional centered complement": "fc3b7102",
    "STL kappa 0.75": "34ac6e51",
    "LSD gate mix 1": "56fc4da0",
    "LSD mix 1": "cb3728c2",
    # session 34 (code at 7b1d953, `RETIRED_LATER`)
    "+LSD centered head lr 10": "1dc9e9a9",
    "BSD centered head lr 10": "e16a262a",
}

#: retired after `RETIRED_AT`: field or row -> the last commit whose code has it (every other
#: retired field, value and row: `RETIRED_AT`)
RETIRED_LATER: dict[str, str] = {
    "lsd_head_lr": "7b1d953",
    "+LSD centered head lr 10": "7b1d953",
    "BSD centered head lr 10": "7b1d953",
}


def retired_at(name: str) -> str:
    """The commit whose code builds retired field, value's option or bench row ``name``."""
    return RETIRED_LATER.get(name, RETIRED_AT)


def without_retired(config: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """``config`` (a saved `SSJDNConfig` as a dict) without the retired fields that hold their
    neutral value; a retired field or value that was switched on raises ValueError naming it and
    the commit whose code builds that model (`retired_at`)."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    out = {}
    for name, value in config.items():
        if name in RETIRED_OPTIONS:
            neutral = RETIRED_OPTIONS[name]
            if neutral is not None and value != neutral:
                raise ValueError(
                    f"{where}: {name}={value!r} was retired (only {neutral!r} remains); "
                    f"the model it describes is built by the code at commit {retired_at(name)}"
                )
            continue
        if value in RETIRED_VALUES.get(name, ()):
            raise ValueError(
                f"{where}: {name}={value!r} was retired; the model it describes is built by "
                f"the code at commit {retired_at(name)}"
            )
        out[name] = value
    return out
