# ruff: noqa
"""profile_eager_step.py 16x32 --steps 30 with the current selection ("current") or with the
dropped whole-buffer selection of commit b79ed09 loaded from /tmp/seven15/pruning_variant.py
("variant": git show b79ed09:packages/seven-prune/src/seven_prune/pruning.py); as run 2026-12-03
08:47 UTC under the lock."""

import sys, importlib.util
from pathlib import Path

variant = len(sys.argv) > 1 and sys.argv[1] == "variant"
sys.argv = ["profile_eager_step.py", "16x32", "--steps", "30"]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/, for profile_eager_step
from seven_prune import pruning

if variant:
    spec = importlib.util.spec_from_file_location(
        "pruning_variant", "/tmp/seven15/pruning_variant.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pruning._keep_top_flat = mod._keep_top_flat
print("variant" if variant else "current", flush=True)
import profile_eager_step

profile_eager_step.main()
