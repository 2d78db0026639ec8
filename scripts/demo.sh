#!/usr/bin/env bash
# make demo: start the critic (embedded `signal` backend, no weights), write the sample
# clips, critique them through the server, print the tables, stop the critic.
set -euo pipefail
cd "$(dirname "$0")/.."
LIFT=.venv/bin/lift
GRPC_PORT=${LIFT_DEMO_GRPC_PORT:-50051}
HTTP_PORT=${LIFT_DEMO_HTTP_PORT:-8080}
DIR=.demo
mkdir -p "$DIR"

"$LIFT" critic serve --grpc-port "$GRPC_PORT" --http-port "$HTTP_PORT" >"$DIR/critic.log" 2>&1 &
CRITIC=$!
trap 'kill -INT $CRITIC 2>/dev/null; wait $CRITIC 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$CRITIC" 2>/dev/null; then cat "$DIR/critic.log"; exit 1; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || { cat "$DIR/critic.log"; exit 1; }
echo "critic ready: gRPC 127.0.0.1:$GRPC_PORT, HTTP http://127.0.0.1:$HTTP_PORT/docs"

"$LIFT" debug samples "$DIR/samples" >/dev/null
"$LIFT" critique "$DIR"/samples/*.mp4 --prompt "colourful shapes glide across a textured wall" \
  --server "127.0.0.1:$GRPC_PORT"

echo
echo "The vlm/composite backends on a tiny random Qwen2-VL checkpoint (random weights:"
echo "its labels and reasons mean nothing; point --model at a real checkpoint):"
"$LIFT" debug tiny-model critic "$DIR/tiny-critic" >/dev/null
"$LIFT" critique "$DIR/samples/flicker.mp4" --prompt "colourful shapes glide across a textured wall" \
  --backend composite --model "$DIR/tiny-critic"
