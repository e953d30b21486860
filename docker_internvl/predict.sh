#!/bin/sh
# FLARE 2025 Task 5 container entry point: answer every question under the input folder and write
# $OUTPUT_DIR/predictions.json. The challenge runs `docker run ... IMAGE /bin/bash -c "sh predict.sh"` in the
# image's working directory (/app) with the data mounted at /workspace/inputs (question files at any depth, e.g.
# <Category>/<dataset>/*_questions_test.json + imagesTs/) and collects /workspace/outputs/predictions.json;
# `docker run IMAGE` alone runs the same (the image's CMD). `docker stop` (SIGTERM) and Ctrl-C reach inference, whose
# journal keeps every answer written so far: the same command resumes. Every path is an environment variable with the container's default, so the same
# script runs outside it. Arguments, if any, are inference.py options (--...), passed on; with --num_shards N
# --shard_index i it writes predictions.shard-<i>-of-<N>.json instead (merge_predictions.py joins the shards).
set -eu

INPUT_DIR="${INPUT_DIR:-/workspace/inputs}"
OUTPUT_DIR="${OUTPUT_DIR:-/workspace/outputs}"
MODELS_DIR="${MODELS_DIR:-/app/models}"

# the first existing folder of $1 $2 ..., else $1 (inference.py then names it as missing)
first_dir() {
    for candidate in "$@"; do
        if [ -d "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
    echo "$1"
}

# Models: ours (InternVL3-8B-hf/, adapters/, task_classifier/) or the authors' release where the original
# inference.py read it (FLARE-InternVL3-8B-hf/, FLARE-gliclass-small-v1.0/). Set a variable to an empty string to
# answer with the base model alone (no adapters) or to route without a router.
export MEVLIP_BASE_MODEL="${MEVLIP_BASE_MODEL:-$MODELS_DIR/InternVL3-8B-hf}"
export MEVLIP_ADAPTERS_DIR="${MEVLIP_ADAPTERS_DIR-$(first_dir "$MODELS_DIR/adapters" "$MODELS_DIR/FLARE-InternVL3-8B-hf")}"
export MEVLIP_ROUTER_DIR="${MEVLIP_ROUTER_DIR-$(first_dir "$MODELS_DIR/task_classifier" "$MODELS_DIR/FLARE-gliclass-small-v1.0")}"
# auto: the first CUDA GPU; without one inference stops and says so (DEVICE=cpu runs on the CPU, slowly)
DEVICE="${DEVICE:-auto}"
BATCH_SIZE="${BATCH_SIZE:-8}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-512}"
ROUTING="${ROUTING:-router}"
# paper: the format the adapters (ours and the released ones) were trained on; original: what the original
# inference.py fed them (docs/fidelity.md)
PRESET="${PRESET:-paper}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"

# A command line meant for the container (e.g. `/bin/bash -c "sh predict.sh"` given to an image whose ENTRYPOINT
# is this script) must not reach inference.py as options.
if [ "$#" -gt 0 ]; then
    case "$1" in
        --*) ;;
        *)
            echo "predict.sh: arguments must be inference.py options (--...), got '$1'" >&2
            exit 2
            ;;
    esac
fi

if [ ! -d "$INPUT_DIR" ]; then
    echo "predict.sh: input folder INPUT_DIR=$INPUT_DIR does not exist (mount the test data there)" >&2
    exit 1
fi
if [ -z "$(ls -A "$INPUT_DIR")" ]; then
    echo "predict.sh: input folder INPUT_DIR=$INPUT_DIR is empty (mount the test data there)" >&2
    exit 1
fi
if ! mkdir -p "$OUTPUT_DIR" 2>/dev/null || [ ! -w "$OUTPUT_DIR" ]; then
    echo "predict.sh: cannot write to OUTPUT_DIR=$OUTPUT_DIR (running as uid $(id -u))" >&2
    exit 1
fi

HERE="$(cd "$(dirname "$0")" && pwd)"
echo "predict.sh: $INPUT_DIR -> $OUTPUT_DIR/predictions.json; base $MEVLIP_BASE_MODEL," \
    "adapters ${MEVLIP_ADAPTERS_DIR:-none}, router ${MEVLIP_ROUTER_DIR:-none}, routing $ROUTING, preset $PRESET"

# The images inference extracts when INPUT_DIR is read-only go to a folder of this run's own under OUTPUT_DIR
# (--images_dir), so a second run into the same OUTPUT_DIR never deletes the images of the first; it is removed on
# exit, a failed or interrupted run included. Inference walks INPUT_DIR at any depth, whatever its layout.
IMAGES_DIR=""
CHILD=""
# shellcheck disable=SC2329  # invoked by the traps below (shellcheck misses traps when the script ends in exit)
cleanup() {
    if [ -n "$IMAGES_DIR" ]; then rm -rf "$IMAGES_DIR"; fi
}
# A shell runs its traps only after the foreground command ends, so inference runs in the background and the
# signal is passed on to it (SIGTERM for both: a background job of a script starts with SIGINT ignored).
# shellcheck disable=SC2329  # invoked by the traps below
forward() {
    if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap forward INT TERM
IMAGES_DIR="$(mktemp -d "$OUTPUT_DIR/.images.XXXXXX")"

python "$HERE/inference.py" \
    --base_dataset_path "$INPUT_DIR" \
    --output_dir "$OUTPUT_DIR" \
    --output_filename predictions.json \
    --max_new_tokens "$MAX_NEW_TOKENS" \
    --batch_size "$BATCH_SIZE" \
    --routing "$ROUTING" \
    --preset "$PRESET" \
    --device "$DEVICE" \
    --images_dir "$IMAGES_DIR" \
    "$@" &
CHILD=$!
# wait returns early (status > 128) when a trapped signal arrives; wait again until inference has really ended
status=0
wait "$CHILD" || status=$?
while kill -0 "$CHILD" 2>/dev/null; do
    status=0
    wait "$CHILD" || status=$?
done
exit "$status"
