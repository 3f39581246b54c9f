"""Shared fixtures for ssjdn's tests."""

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest
import torch
from ssjdn import BidirectionalScaleDecoupling

#: the committed benchmark cache (its file names hold each run's method key)
CACHE = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "cache"


def _guide_bsd(sgs: str = "both", beta: float = 1.0, **kw: object) -> BidirectionalScaleDecoupling:
    torch.manual_seed(0)
    return BidirectionalScaleDecoupling(
        6,
        sgs=sgs,  # type: ignore[arg-type]
        beta=beta,
        out_dim=5,
        scope="guide",
        normalize=True,
        polarity="keep_salient",
        guide="contrast",
        **kw,  # type: ignore[arg-type]
    ).double()


def _bsd_inputs(seed: int = 1, n: int = 3) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g, dtype=torch.float64)
    projected = [torch.randn(n, 6, s, s, generator=g, dtype=torch.float64) for s in (16, 8, 4, 2)]
    return projected, images


@pytest.fixture
def guide_bsd() -> Callable[..., BidirectionalScaleDecoupling]:
    """A float64 BSD on 6 channels, 4 scales, guided by the image's local contrast, keeping the
    salient places (``scope="guide"``, normalised maps); torch seeded with 0 before it is built:
    `guide_bsd(sgs="both", beta=1.0, **options)`."""
    return _guide_bsd


@pytest.fixture
def bsd_inputs() -> Callable[..., tuple[list[torch.Tensor], torch.Tensor]]:
    """`bsd_inputs(seed=1, n=3)`: n random 32 x 32 images and their projected maps at sizes 16, 8,
    4 and 2 (6 channels), float64, from a generator seeded with `seed`."""
    return _bsd_inputs


def _cached_keys_kept(seed_glob: str, methods: Sequence[str]) -> int:
    """Assert that every method of `methods` with a committed validation run on the seeds matching
    `seed_glob` (e.g. "3[5-9]") still gets, from the bench's `method_key`, the key in that run's
    file name (a new option must enter the hash only when switched on); return how many were
    checked."""
    from ssjdn.bench import method_key

    assert CACHE.is_dir()
    names = {}
    for f in CACHE.glob(f"val/*/*__seed{seed_glob}.json"):
        slug, key, _ = f.stem.split("__")
        names[slug] = key
    checked = 0
    for name in methods:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
        if slug in names:
            assert method_key(name) == names[slug], name
            checked += 1
    return checked


@pytest.fixture
def cached_keys_kept() -> Callable[[str, Sequence[str]], int]:
    """`_cached_keys_kept(seed_glob, methods)`: the cached runs' keys are unchanged."""
    return _cached_keys_kept


#: every bench method defined through session 27 and its cache key (main at 0b65d93, then session
#: 26b's and 27's names), one record shared by the tests that check that later options leave
#: earlier keys alone; each test excludes the names its session added
METHOD_KEYS = Path(__file__).resolve().parent / "method_keys.json"


def _method_keys(exclude: Iterable[str] = ()) -> dict[str, str]:
    keys = json.loads(METHOD_KEYS.read_text())
    excluded = set(exclude)
    assert excluded <= set(keys), sorted(excluded - set(keys))
    return {name: key for name, key in keys.items() if name not in excluded}


@pytest.fixture
def method_keys() -> Callable[..., dict[str, str]]:
    """`method_keys(exclude=())`: the recorded methods and cache keys, less `exclude` (the names
    a session added, to read the record as it stood before that session)."""
    return _method_keys


def _write_val_runs(
    root: Path, runs: dict[str, list[float]], seeds: range, split: str = "val"
) -> Path:
    """Write made-up validation runs (mR = hard mR = the value) of each method at `seeds` into
    the quick bench's validation cache under `root` (``split="test"``: its test cache), the
    layout `scripts/decide.py` reads; return that folder (created if missing; a run already
    there is overwritten)."""
    from ssjdn.bench import BenchSettings, cache_stem

    folder = root / split / BenchSettings.quick().key()
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in runs.items():
        for seed, v in zip(seeds, values):
            run = {"metrics": {"mR": v, "hard_mR": v}}
            (folder / f"{cache_stem(name, seed)}.json").write_text(json.dumps(run))
    return folder


@pytest.fixture
def write_val_runs() -> Callable[..., Path]:
    """`write_val_runs(root, runs, seeds, split="val")`: made-up runs for the decision rules."""
    return _write_val_runs
