#!/usr/bin/env bash
# Run `chromabeam colorize` on Dataflow, directly (cpu | gpu) or as a Flex Template
# (template-build | template-run). Run from the repository root, after `pip install .` in a
# Python 3.11 environment (the same Python and Beam 2.77.0 as the image) and
# `gcloud auth application-default login`.
#
#   PROJECT=my-project BUCKET=my-bucket deploy/dataflow/run_colorize.sh image
#   PROJECT=my-project BUCKET=my-bucket deploy/dataflow/run_colorize.sh cpu
#   PROJECT=my-project BUCKET=my-bucket deploy/dataflow/run_colorize.sh gpu
#   PROJECT=my-project BUCKET=my-bucket deploy/dataflow/run_colorize.sh template-build
#   PROJECT=my-project BUCKET=my-bucket deploy/dataflow/run_colorize.sh template-run
set -euo pipefail

PROJECT=${PROJECT:?set PROJECT}
BUCKET=${BUCKET:?set BUCKET}
REGION=${REGION:-europe-west1}
REPO=${REPO:-chromabeam}                     # an Artifact Registry Docker repository
IMAGE=${IMAGE:-$REGION-docker.pkg.dev/$PROJECT/$REPO/chromabeam:0.1.0}
GPU_IMAGE=${GPU_IMAGE:-$REGION-docker.pkg.dev/$PROJECT/$REPO/chromabeam:0.1.0-cuda}
INPUTS=${INPUTS:-gs://$BUCKET/scans/**/*.tif}
OUTPUT=${OUTPUT:-gs://$BUCKET/out}
TEMPLATE=${TEMPLATE:-gs://$BUCKET/templates/chromabeam.json}
JOB_NAME=chromabeam-colorize-$(date +%Y%m%d-%H%M%S)

# Beam flags as --flag=value (so that no value is taken for an input glob).
DATAFLOW=(
  --runner=DataflowRunner
  --project="$PROJECT"
  --region="$REGION"
  --temp_location="gs://$BUCKET/tmp"
  --job_name="$JOB_NAME"
  --experiments=use_runner_v2      # custom containers need Runner v2
  --sdk_location=container         # Beam is in the image: do not stage an SDK tarball
)

case "${1:-cpu}" in
  image)  # build and push the CPU and CUDA images
    docker build -f deploy/Dockerfile -t "$IMAGE" .
    docker build -f deploy/Dockerfile -t "$GPU_IMAGE" \
      --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 .
    docker push "$IMAGE"
    docker push "$GPU_IMAGE"
    ;;
  cpu)
    chromabeam colorize "$INPUTS" "$OUTPUT" "${DATAFLOW[@]}" \
      --sdk_container_image="$IMAGE" \
      --machine_type=n2-standard-4
    ;;
  gpu)  # one T4 per worker; the driver is installed by Dataflow, CUDA comes with torch
    chromabeam colorize "$INPUTS" "$OUTPUT" "${DATAFLOW[@]}" \
      --sdk_container_image="$GPU_IMAGE" \
      --machine_type=n1-standard-8 \
      --dataflow_service_options="worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver" \
      --experiments=no_use_multiple_sdk_containers \
      --device cuda --batch-size 32
    # no_use_multiple_sdk_containers: one SDK process per VM, so one model copy on the GPU.
    ;;
  template-build)  # the image doubles as the Flex Template launcher (see deploy/Dockerfile)
    gcloud dataflow flex-template build "$TEMPLATE" \
      --image="$IMAGE" \
      --sdk-language=PYTHON \
      --metadata-file=deploy/dataflow/flex_template_metadata.json \
      --project="$PROJECT"
    ;;
  template-run)  # ^~^ makes '~' the separator, as the globs may contain commas
    gcloud dataflow flex-template run "$JOB_NAME" \
      --template-file-gcs-location="$TEMPLATE" \
      --project="$PROJECT" --region="$REGION" \
      --temp-location="gs://$BUCKET/tmp" \
      --parameters="^~^job=colorize~inputs=$INPUTS~output=$OUTPUT~sdk_container_image=$IMAGE"
    ;;
  *)
    echo "usage: $0 image|cpu|gpu|template-build|template-run" >&2
    exit 2
    ;;
esac
