#!/bin/sh
# FLARE 2025 Task 5 container entry point: answer every question under the input folder and write
# $OUTPUT_DIR/predictions.json. The challenge runs `sh predict.sh` with the data mounted at /workspace/inputs
# (<Category>/<dataset>/*_questions_test.json + imagesTs/) and collects /workspace/outputs/predictions.json.
# Every path is an environment variable with the container's default, so the same script runs outside it.
set -eu

INPUT_DIR="${INPUT_DIR:-/workspace/inputs}"
OUTPUT_DIR="${OUTPUT_DIR:-/workspace/outputs}"
MODELS_DIR="${MODELS_DIR:-/app/models}"
export MEVLIP_BASE_MODEL="${MEVLIP_BASE_MODEL:-$MODELS_DIR/InternVL3-8B-hf}"
# set to an empty string to answer with the base model alone (no adapters) or to route without a router
export MEVLIP_ADAPTERS_DIR="${MEVLIP_ADAPTERS_DIR-$MODELS_DIR/adapters}"
export MEVLIP_ROUTER_DIR="${MEVLIP_ROUTER_DIR-$MODELS_DIR/task_classifier}"
DEVICE="${DEVICE:-cuda:0}"
BATCH_SIZE="${BATCH_SIZE:-8}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-512}"
ROUTING="${ROUTING:-router}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"

HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUTPUT_DIR"

# The test set may arrive as <Category>/<dataset>/ folders directly under INPUT_DIR (no split folder);
# inference walks split folders, so expose such a layout as INPUT_DIR/testing through a link in a scratch folder.
DATA_ROOT="$INPUT_DIR"
if [ ! -d "$INPUT_DIR/testing" ] && [ ! -d "$INPUT_DIR/validation-hidden" ] && [ ! -d "$INPUT_DIR/validation-public" ]; then
    DATA_ROOT="$(mktemp -d)"
    ln -s "$(cd "$INPUT_DIR" && pwd)" "$DATA_ROOT/testing"
fi

python "$HERE/inference.py" \
    --base_dataset_path "$DATA_ROOT" \
    --output_dir "$OUTPUT_DIR" \
    --output_filename predictions.json \
    --max_new_tokens "$MAX_NEW_TOKENS" \
    --batch_size "$BATCH_SIZE" \
    --routing "$ROUTING" \
    --device "$DEVICE" \
    "$@"
