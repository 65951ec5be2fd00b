#!/usr/bin/env bash
# Reproduce models/weights/hypercolumn.pt (Larsson et al., seed 003, at CPU scale) from the staged
# shards of models/recipe.sh step 1. About 22 min of 1-thread training; the decode settings are
# chosen on the ImageNet validation split; Kodak is only the benchmark in the last step.
# Usage: bash models/recipe_hypercolumn.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
DATA=../shared/data

# 1. Sparse-hypercolumn training: CIFAR-10 at 64 px, then the ImageNet samples at 176 px.
chromabeam train "$RUNS/stage-cifar64" "$RUNS/hc-cifar" --model hypercolumn --width 0.25 \
  --epochs 1 --batch-size 32 --lr 2e-3 --threads 1 --max-minutes 10 --max-val 1000
chromabeam train "$RUNS/stage-imagenet176" "$RUNS/hc" --model hypercolumn --width 0.25 \
  --init "$RUNS/hc-cifar/model.pt" --crop 128 --epochs 40 --batch-size 16 --lr 1e-3 \
  --threads 1 --max-minutes 12 --render-size 176

# 2. Decode settings on the ImageNet validation split (chroma median vs expectation, T, strength).
python -c "import pyarrow.parquet as pq; t = pq.read_table('$RUNS/stage-imagenet176/shards', \
  columns=['source_uri', 'split']).to_pylist(); print('\n'.join(sorted(r['source_uri'] \
  for r in t if r['split'] == 'val')))" > "$RUNS/imagenet-val.txt"
W="$RUNS/hc/model.pt"
M=""
for spec in "decode=annealed,temperature=1.0,strength=1.0,label=median-s1.0" \
            "decode=annealed,temperature=1.0,strength=0.35,label=median-s0.35" \
            "decode=annealed,temperature=0.6,strength=0.35,label=median-T0.6-s0.35" \
            "decode=annealed,temperature=0.6,strength=0.25,label=median-T0.6-s0.25" \
            "decode=mean,strength=0.35,label=mean-s0.35" \
            "decode=mode,strength=0.35,label=mode-s0.35"; do
  M="$M --model hypercolumn,weights=$W,render_size=176,$spec"
done
chromabeam evaluate $(cat "$RUNS/imagenet-val.txt") "$RUNS/hc-select-val" $M \
  --priors "$RUNS/stage-imagenet176/priors.json" --size 176 --no-report

# 3. Ship (fp16) with the chosen settings (chroma median, T 0.6, strength 0.35), then Kodak.
python -m models.ship "$RUNS/hc" hypercolumn --render-size 176 --temperature 0.6 --strength 0.35
chromabeam evaluate "$DATA/kodak/*.png" "$RUNS/hc-kodak" --model hypercolumn
