#!/usr/bin/env bash
# Reproduce models/weights/pic.pt and its ablation from the staged ImageNet samples (models/recipe.sh
# step 1) and the shipped eccv16-small (its trunk initialises and stays frozen as g(L)).
# About 20 min of 1-thread training, both runs side by side. Kodak is only the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
COMMON="--init models/weights/eccv16-small.pt --pic-freeze-trunk --crop 128 --epochs 200 \
  --batch-size 16 --lr 2e-3 --threads 1 --max-val 48 --render-size 256"
chromabeam train "$RUNS/stage-imagenet176" "$RUNS/pic-imagenet" --model pic $COMMON --max-minutes 13 &
chromabeam train "$RUNS/stage-imagenet176" "$RUNS/pic-fact-imagenet" --model pic --pic-head factorised \
  $COMMON --max-minutes 7
wait
# bits per ab dimension on all validation rows, and decode settings (chosen on validation)
python bench/pic_select.py "$RUNS/pic-imagenet/model.pt" 97
python bench/pic_select.py "$RUNS/pic-fact-imagenet/model.pt" 97
python -m models.ship "$RUNS/pic-imagenet" pic --strength 0.25 --render-size 256
chromabeam evaluate '../shared/data/kodak/*.png' "$RUNS/pic-kodak" --model pic
python -m models.ship "$RUNS/pic-imagenet" pic --strength 0.25 --render-size 256 \
  --notes models/pic_notes.md --eval "$RUNS/pic-kodak"
python bench/pic.py --samples 4
