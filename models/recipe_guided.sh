#!/usr/bin/env bash
# Reproduce models/weights/siggraph17-small.pt (about 25 min of training on 1 CPU thread).
# Simulated hints as Zhang et al. 2017; the trunk starts from the shipped eccv16-small.
# Usage: bash models/recipe_guided.sh [RUNS_DIR]   (after the staging of models/recipe.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
DATA=../shared/data

# 1. Pre-train on CIFAR-10 at 64 px, then fine-tune on the ImageNet samples (128 px crops).
chromabeam train "$RUNS/stage-cifar64" "$RUNS/guided-cifar" --model siggraph17-small --width 0.25 \
  --init models/weights/eccv16-small.pt --epochs 3 --batch-size 32 --lr 1e-3 --threads 1 \
  --max-minutes 10 --max-val 500
chromabeam train "$RUNS/stage-imagenet176" "$RUNS/guided-imagenet" --model siggraph17-small \
  --width 0.25 --init "$RUNS/guided-cifar/model.pt" --crop 128 --epochs 40 --batch-size 16 \
  --lr 5e-4 --threads 1 --max-minutes 14 --render-size 176

# 2. Decode settings on the ImageNet validation split (never Kodak), 0 and 10 simulated points.
python -c "import pyarrow.parquet as pq; t = pq.read_table('$RUNS/stage-imagenet176/shards', \
  columns=['source_uri', 'split']).to_pylist(); print('\n'.join(sorted(r['source_uri'] \
  for r in t if r['split'] == 'val')))" > "$RUNS/imagenet-val.txt"
M=""
for r in 176 128; do for s in 1.0 0.6; do
  M="$M --model siggraph17-small,weights=$RUNS/guided-imagenet/model.pt,render_size=$r,strength=$s,label=r$r-s$s"
done; done
chromabeam evaluate $(cat "$RUNS/imagenet-val.txt") "$RUNS/guided-select-val" $M \
  --priors "$RUNS/stage-imagenet176/priors.json" --size 176 --hints 0 10 --no-report

# 3. Ship (fp16) with the chosen settings, then the Kodak hint sweep (benchmark only).
python -m models.ship "$RUNS/guided-imagenet" siggraph17-small --render-size 176 --strength 0.6 \
  --notes models/guided_notes.md
chromabeam evaluate "$DATA/kodak/*.png" "$RUNS/eval-hints" --model siggraph17-small \
  --hints 0 1 2 5 10 20 50
