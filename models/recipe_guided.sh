#!/usr/bin/env bash
# Reproduce models/weights/siggraph17-small.pt (about 25 + 22 min of training on 1 CPU thread).
# Simulated hints as Zhang et al. 2017; the trunk starts from the shipped eccv16-small.
# Step 1 trains the plain hint network (v1); step 2 fine-tunes it into the residual model
# (input + IDW propagation of the hints, output = propagation + learned correction).
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

# 2. Residual fine-tuning (models.guided: residual=True, set by `train` for siggraph17-small).
chromabeam train "$RUNS/stage-imagenet176" "$RUNS/guided-res" --model siggraph17-small \
  --width 0.25 --init "$RUNS/guided-imagenet/model.pt" --crop 128 --epochs 40 --batch-size 16 \
  --lr 5e-4 --threads 1 --max-minutes 22 --render-size 176

# 3. Decode strength on the ImageNet validation split (never Kodak), 0 / 1 / 10 simulated
#    points: strength applies to unguided images; hinted ones use --hinted-strength (default 1).
python -c "import pyarrow.parquet as pq; t = pq.read_table('$RUNS/stage-imagenet176/shards', \
  columns=['source_uri', 'split']).to_pylist(); print('\n'.join(sorted(r['source_uri'] \
  for r in t if r['split'] == 'val')))" > "$RUNS/imagenet-val.txt"
W="$RUNS/guided-res/model.pt"
chromabeam evaluate $(cat "$RUNS/imagenet-val.txt") "$RUNS/guided-res-select-val" \
  --model "siggraph17-small,weights=$W,render_size=176,strength=1.0,label=s1.0" \
  --model "siggraph17-small,weights=$W,render_size=176,strength=0.6,label=s0.6" \
  --priors "$RUNS/stage-imagenet176/priors.json" --size 176 --hints 0 1 10 --no-report
chromabeam evaluate $(cat "$RUNS/imagenet-val.txt") "$RUNS/guided-res-select-val-h06" \
  --model "siggraph17-small,weights=$W,render_size=176,strength=0.6,label=s0.6-hinted0.6" \
  --priors "$RUNS/stage-imagenet176/priors.json" --size 176 --hints 1 10 --hinted-strength 0.6 \
  --no-report

# 4. Ship (fp16) with the chosen settings, then the Kodak hint sweep (benchmark only).
python -m models.ship "$RUNS/guided-res" siggraph17-small --render-size 176 --strength 1.0 \
  --notes models/guided_notes.md
chromabeam evaluate "$DATA/kodak/*.png" "$RUNS/eval-hints-res" --model siggraph17-small \
  --hints 0 1 2 5 10 20 50
python -m models.ship "$RUNS/guided-res" siggraph17-small --render-size 176 --strength 1.0 \
  --notes models/guided_notes.md --eval "$RUNS/eval-hints-res"
