#!/usr/bin/env bash
# Reproduce the shipped weights (models/weights/) from ../shared/data on a 2-core CPU.
# Kodak is never trained on; it is only the benchmark in the last step.
# Usage: bash models/recipe.sh [RUNS_DIR]   (about 1.5 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
DATA=../shared/data

# 1. Stage: CIFAR-10 train (50k photos, upscaled to 64 px) and the 1000 ImageNet samples (176 px).
chromabeam stage "$DATA/cifar10/train/*/*.jpg" "$RUNS/stage-cifar64" --size 64
chromabeam stage "$DATA/imagenet-samples/*.JPEG" "$RUNS/stage-imagenet176" --size 176

# 2. Classification (rebalanced soft cross-entropy): pre-train on CIFAR-10, fine-tune on ImageNet.
chromabeam train "$RUNS/stage-cifar64" "$RUNS/cls-cifar" --model eccv16-small --width 0.25 \
  --epochs 20 --batch-size 32 --lr 2e-3 --threads 2 --max-minutes 45 --max-val 1000
chromabeam train "$RUNS/stage-imagenet176" "$RUNS/cls-imagenet" --model eccv16-small --width 0.25 \
  --init "$RUNS/cls-cifar/model.pt" --crop 128 --epochs 40 --batch-size 16 --lr 5e-4 \
  --threads 1 --max-minutes 20 --render-size 176

# 3. Regression baseline (L2 on ab), same data and schedule shape, shorter.
chromabeam train "$RUNS/stage-cifar64" "$RUNS/reg-cifar" --model regression --width 0.25 \
  --epochs 20 --batch-size 32 --lr 2e-3 --threads 1 --max-minutes 20 --max-val 1000
chromabeam train "$RUNS/stage-imagenet176" "$RUNS/reg-imagenet" --model regression --width 0.25 \
  --init "$RUNS/reg-cifar/model.pt" --crop 128 --epochs 40 --batch-size 16 --lr 5e-4 \
  --threads 1 --max-minutes 10 --render-size 176

# 4. Choose decode settings on the ImageNet validation split (never on Kodak).
python -c "import pyarrow.parquet as pq; t = pq.read_table('$RUNS/stage-imagenet176/shards', \
  columns=['source_uri', 'split']).to_pylist(); print('\n'.join(sorted(r['source_uri'] \
  for r in t if r['split'] == 'val')))" > "$RUNS/imagenet-val.txt"
M=""
for t in 0.38 0.7 1.0; do for s in 1.0 0.6 0.35; do
  M="$M --model eccv16-small,weights=$RUNS/cls-imagenet/model.pt,render_size=128,temperature=$t,strength=$s,label=T$t-s$s"
done; done
chromabeam evaluate $(cat "$RUNS/imagenet-val.txt") "$RUNS/select-val2" $M \
  --model regression,weights="$RUNS/reg-cifar/model.pt",render_size=128,label=reg-cifar \
  --priors "$RUNS/stage-imagenet176/priors.json" --size 176 --no-report

# 5. Ship fp16 weights with the chosen settings, benchmark on Kodak at full resolution
#    (original L kept), and add the benchmark to the model cards.
CLS="--render-size 128 --temperature 0.7 --strength 0.35"
python -m models.ship "$RUNS/cls-imagenet" eccv16-small $CLS
python -m models.ship "$RUNS/reg-imagenet" regression --render-size 128
chromabeam evaluate "$DATA/kodak/*.png" "$RUNS/eval-kodak" --model eccv16-small --model regression
python -m models.ship "$RUNS/cls-imagenet" eccv16-small $CLS --eval "$RUNS/eval-kodak"
python -m models.ship "$RUNS/reg-imagenet" regression --render-size 128 --eval "$RUNS/eval-kodak"
