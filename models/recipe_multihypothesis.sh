#!/usr/bin/env bash
# Reproduce models/weights/multihypothesis.pt (Baig & Torresani, seed 000, at CPU scale) from the
# staged shards of models/recipe.sh step 1: about 25 min of 1-thread training. The decode setting
# (selector argmax, strength 1) was chosen on the ImageNet validation split (see the card);
# Kodak is only the benchmark in the last step.
# Usage: bash models/recipe_multihypothesis.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
DATA=../shared/data

chromabeam train "$RUNS/stage-cifar64" "$RUNS/mh-cifar" --model multihypothesis --k 5 \
  --init models/weights/eccv16-small.pt --epochs 20 --batch-size 32 --lr 1e-3 --threads 1 \
  --max-minutes 12 --max-val 1000
chromabeam train "$RUNS/stage-imagenet176" "$RUNS/mh-imagenet" --model multihypothesis --k 5 \
  --init "$RUNS/mh-cifar/model.pt" --crop 128 --epochs 40 --batch-size 16 --lr 5e-4 --threads 1 \
  --max-minutes 13 --render-size 128
python -m models.ship "$RUNS/mh-imagenet" multihypothesis --render-size 128 --strength 1.0 \
  --decode mode --notes models/multihypothesis_notes.md
chromabeam evaluate "$DATA/kodak/*.png" "$RUNS/mh-eval-kodak" --model multihypothesis
python bench/mh_oracle.py --cells 8,16,32
