#!/usr/bin/env bash
# make demo: start the critic (embedded `signal` backend, no weights) and the generator
# (embedded tiny CogVideoX demo model), critique the sample clips, generate a video and
# critique it, then the tiny VLM critic in-process; stop both services.
set -euo pipefail
cd "$(dirname "$0")/.."
LIFT=.venv/bin/lift
GRPC_PORT=${LIFT_DEMO_GRPC_PORT:-50051}
HTTP_PORT=${LIFT_DEMO_HTTP_PORT:-8080}
GEN_GRPC_PORT=${LIFT_DEMO_GENERATOR_GRPC_PORT:-50052}
GEN_HTTP_PORT=${LIFT_DEMO_GENERATOR_HTTP_PORT:-8081}
DIR=.demo
mkdir -p "$DIR"

"$LIFT" critic serve --grpc-port "$GRPC_PORT" --http-port "$HTTP_PORT" >"$DIR/critic.log" 2>&1 &
CRITIC=$!
"$LIFT" generator serve --grpc-port "$GEN_GRPC_PORT" --http-port "$GEN_HTTP_PORT" \
  >"$DIR/generator.log" 2>&1 &
GENERATOR=$!
trap 'kill -INT $CRITIC $GENERATOR 2>/dev/null; wait $CRITIC $GENERATOR 2>/dev/null || true' EXIT

wait_ready() { # name pid http-port log
  for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$3/readyz" >/dev/null 2>&1; then
      echo "$1 ready: HTTP http://127.0.0.1:$3/docs"
      return 0
    fi
    if ! kill -0 "$2" 2>/dev/null; then cat "$4"; exit 1; fi
    sleep 0.2
  done
  cat "$4"
  exit 1
}
wait_ready critic "$CRITIC" "$HTTP_PORT" "$DIR/critic.log"
wait_ready generator "$GENERATOR" "$GEN_HTTP_PORT" "$DIR/generator.log"

"$LIFT" debug samples "$DIR/samples" >/dev/null
"$LIFT" critique "$DIR"/samples/*.mp4 --prompt "colourful shapes glide across a textured wall" \
  --server "127.0.0.1:$GRPC_PORT"

echo
echo "The generator's embedded demo model (tiny random CogVideoX: its video is noise), then"
echo "the critic's verdict on that video:"
"$LIFT" generate --prompt "a dog runs along the beach at sunset" --seed 7 \
  --out "$DIR/generated.mp4" --server "127.0.0.1:$GEN_GRPC_PORT"
"$LIFT" critique "$DIR/generated.mp4" --prompt "a dog runs along the beach at sunset" \
  --server "127.0.0.1:$GRPC_PORT"

echo
echo "The vlm/composite backends on a tiny random Qwen2-VL checkpoint (random weights:"
echo "its labels and reasons mean nothing; point --model at a real checkpoint):"
"$LIFT" debug tiny-model critic "$DIR/tiny-critic" >/dev/null
"$LIFT" critique "$DIR/samples/flicker.mp4" --prompt "colourful shapes glide across a textured wall" \
  --backend composite --model "$DIR/tiny-critic"

echo
echo "An alignment run on the embedded defaults (tiny generator, signal critic, real clips):"
echo "held-out reward before/after with its 95 % CI, the guard signals, and a plot."
"$LIFT" align --demo --plot "$DIR/lift-align.png"

echo
echo "Learning from human feedback: LoRA-tune the tiny random critic on the embedded rule data"
echo "(clips of a shape on a panning checkered wall; noisy or blurred = bad fidelity, a freeze ="
echo "bad motion, a caption naming another colour = bad semantics; one reason per case; about"
echo "1-2 min on 2 cores),"
echo "then one Table-2 report on the held-out clips: the signal critic, the critic before"
echo "(vlm DIR) and after (vlm DIR+adapter) training."
LEARN="$DIR/learn"
START=$(date +%s)
"$LIFT" critic train --demo "$LEARN"
"$LIFT" hra eval "$LEARN/data/test.jsonl" \
  --critic "vlm:$LEARN/tiny-critic" --critic "vlm:$LEARN/tiny-critic:$LEARN/adapter"
echo "learning step: $(($(date +%s) - START)) s"
