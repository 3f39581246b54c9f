"""Smoke tests: the package imports alone, its public names, and the README example runs."""

import importlib.metadata
import re
from pathlib import Path

import lnpt


def test_version_matches_metadata() -> None:
    assert lnpt.__version__ == importlib.metadata.version("lnpt")


def test_public_names_are_pinned() -> None:
    """lnpt.__all__: the method, its options and integrations, its data and models, nothing else."""
    assert sorted(lnpt.__all__) == sorted(
        [
            "BASELINES",
            "MLP",
            "CNN1d",
            "Adaptor",
            "AdaptorSync",
            "DegenerateTeacherWarning",
            "DigitsSplit",
            "DynamicMask",
            "FeatureExtractor",
            "InputsOnly",
            "LabelFreeObjective",
            "LabelFreeTrainer",
            "LearningGap",
            "LearningGapDiagnostic",
            "SmallCNN",
            "SmallResNet",
            "__version__",
            "baseline_mask",
            "density_schedule",
            "head_pattern",
            "load_digits_split",
            "load_mnist1d_split",
            "normalize_scores",
            "prune",
            "score",
            "select_mask",
            "spearman",
            "synflow_prune",
        ]
    )
    for name in lnpt.__all__:
        assert hasattr(lnpt, name), name


def test_readme_usage_example_runs(capsys) -> None:
    """README: the usage example runs as written."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    code = re.search(r"## Usage\s+```python\n(.*?)```", readme.read_text(), re.S).group(1)
    exec(compile(code, str(readme), "exec"), {})
    printed = capsys.readouterr().out.split()
    assert abs(float(printed[0]) - 0.95) < 1e-4 and float(printed[1]) >= 0
