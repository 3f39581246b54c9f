#!/usr/bin/env bash
# The GPU checks of the repository, as one short script for a lent CUDA machine whose python3
# already holds torch, torchvision, transformers, matplotlib and tqdm (run from the repository root;
# results under ${OUT:-gpu-out}). It runs the packages from source, not installed:
#   1. seven-prune's semi-structured tests, where their CUDA branch runs;
#   2. seven-prune's 2:4 speed check (scripts/semi_structured_gpu.py): per-layer and whole-forward
#      time, dense vs torch.sparse semi-structured, MiniLM-L6 and BERT-base shapes;
#   3. where a 2:4 product's fixed cost goes (scripts/semi_structured_call_cost.py): dense, the
#      tensor subclass, the bare cuSPARSELt call, and each replayed from a CUDA graph; whole
#      MiniLM/BERT-base forwards eager and graphed;
#   4. SEVEN_dyn's per-step cost beside a plain step (scripts/overhead_gpu.py) and the GPU selection
#      against the CPU's on the same buffers (scripts/select_cpu_cuda.py);
#   5. lrcnn bench at 224x224 batch 32 on VGG-16 and ResNet-50 (issue 22's GPU setting):
#      torch.cuda.max_memory_allocated and step time of plain, checkpointing and row-centric.
# Every part has its own time limit and log, so one failing part leaves the others' results.
set -u
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH="$PWD/shared/maskloop/src:$PWD/packages/seven-prune/src:$PWD/packages/lrcnn/src"
nvidia-smi -L
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
timeout 90 python3 -m pytest -q -p no:cacheprovider --noconftest \
  packages/seven-prune/tests/test_seven_prune_semi_structured.py 2>&1 | tail -5
timeout 300 python3 packages/seven-prune/scripts/semi_structured_gpu.py \
  --out "$out/seven_2_4_gpu.json" 2>&1 | tee "$out/seven_2_4_gpu.log"
timeout 150 python3 packages/seven-prune/scripts/semi_structured_call_cost.py \
  --out "$out/seven_call_cost.json" 2>&1 | tee "$out/seven_call_cost.log"
timeout 60 python3 packages/seven-prune/scripts/select_cpu_cuda.py 2>&1 | tail -3 | tee "$out/seven_select_cpu_cuda.log"
timeout 150 python3 -W ignore packages/seven-prune/scripts/overhead_gpu.py --batches 16x32,32x64,128x128 \
  --out "$out/seven_overhead_gpu.json" 2>&1 | grep -v -E "Warning|_cut\(" | tee "$out/seven_overhead_gpu.log"
timeout 240 python3 -m lrcnn.cli bench --batch 32 --only 224-32 --repeats 5 --budget-s 100 \
  --max-minutes 3 --threads 4 --out "$out/lrcnn" 2>&1 | tail -40 | tee "$out/lrcnn.log"
ls -la "$out" "$out/lrcnn"
