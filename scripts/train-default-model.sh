#!/usr/bin/env bash
# Rebuild the bundled default model (src/maskdetect/assets/models/default/) from the CC0 andrewmvd
# photos alone: draw masks on their uncovered faces, split by photo, train. docs/model-card.md gives the
# figures. Usage: bash scripts/train-default-model.sh [ANDREWMVD_DIR] [WORK_DIR]
# On one GPU the training takes a few minutes; on 2 CPU cores about 40 minutes (an epoch of 4,366
# images at 224 px took 165 s there).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-../shared/data/andrewmvd-face-mask}
work=${2:-data/default-model}
bash scripts/install.sh
md=.venv/bin/maskdetect
mkdir -p "$work"

# Synthetic masks on andrewmvd's uncovered faces: all four placements, then two more covered-only
# draws, so that a drawn mask is not itself a sign of "incorrect" (covered:incorrect 823:1041).
$md synth "$src" "$work/synth1" --min-face 40 --seed 0
$md synth "$src" "$work/synth2" --min-face 20 --seed 1
$md synth "$src" "$work/synth-cov2" --min-face 20 --seed 2 --placements Mask
$md synth "$src" "$work/synth-cov3" --min-face 20 --seed 3 --placements Mask

# The photo split first (the one the first bundled model used), then the full tree with that split kept.
split="--seed 0 --min-face 10 --holdout 0.1 --validation 0.15"
$md data prepare --voc "$src" --maskedface-net "$work/synth1" --out "$work/tree-photos" $split
$md data prepare --voc "$src" --maskedface-net "$work/synth1" --maskedface-net "$work/synth2" \
    --maskedface-net "$work/synth-cov2" --maskedface-net "$work/synth-cov3" --out "$work/tree" $split \
    --keep-split "$work/tree-photos/split_manifest.csv"

$md train --data "$work/tree" --out "$work/run" --model mobilenet_v2 --pretrained --input-size 224 \
    --epochs 15 --batch-size 32 --lr 5e-4 --warmup-epochs 0.5 --label-smoothing 0.1 --balance sampler \
    --patience 4 --seed 0 --workers 2
# A bundle of it, with the face verifiers fitted on andrewmvd's first 400 photos only (the rest is held out).
$md bundle "$work/run/best.pt" --out "$work/bundle" --data "andrewmvd (CC0 1.0) and masks drawn on its faces" \
    --licence CC0-1.0
only="--only bench/andrewmvd-verifier-photos.txt"
for precision in int8 fp32; do
  $md fit-verifier "$work/bundle" "$src" $only --precision $precision --detector retinaface-960 \
      --candidate-threshold 0.2 --precision-target 0.9 --trust-precision 0.95
  $md fit-verifier "$work/bundle" "$src" $only --precision $precision --detector blazeface
  $md fit-verifier "$work/bundle" "$src" $only --precision $precision --detector blazeface-fast \
      --precision-target 0.95
done
echo "bundle: $work/bundle (replace src/maskdetect/assets/models/default/ with it to ship it)"
