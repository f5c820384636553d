#!/usr/bin/env bash
# The whole system on this machine: starts the emulators, provisions the stack,
# runs the listener, and stays up until Ctrl-C, then stops everything it started.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
export AH_RUN="${AH_RUN:-$AH_CACHE/run}"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "stopping..." >&2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$here/stop.sh"
  echo "stopped" >&2
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

echo "building..." >&2
cargo build --quiet --manifest-path "$root/Cargo.toml" --bins
bin="$root/target/debug"

eval "$(bash "$here/start.sh")"
echo "DynamoDB Local on $AWS_ENDPOINT_URL_DYNAMODB, SNS/SQS (moto) on $AWS_ENDPOINT_URL_SQS" >&2

eval "$("$bin/activity-listener" provision | sed 's/^/export /')"
echo "provisioned table $ACTIVITY_TABLE and queue $ACTIVITY_QUEUE_URL" >&2

"$bin/activity-listener" poll >>"$AH_RUN/listener.log" 2>&1 &
pids+=($!)
echo "listener polling $ACTIVITY_QUEUE_URL (logs: $AH_RUN/listener.log)" >&2

echo "ready; press Ctrl-C to stop" >&2
# Wait on a child so Ctrl-C is handled at once.
sleep infinity &
pids+=($!)
wait "$!"
