#!/usr/bin/env bash
# Stops what localstack/start.sh (the emulators) and localstack/run.sh (the
# listener and the API) started, from their pid files in $AH_RUN, and waits until
# they are gone. Exits non-zero if one of them could not be stopped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
AH_RUN="${AH_RUN:-$AH_CACHE/run}"

# A zombie (exited, not yet reaped) counts as gone.
alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1; [[ "$s" != Z* ]]; }

status=0
# The listener and the API first, then the emulators they talk to. Each pid file
# names the program it must belong to, so a stale file whose pid now belongs to
# some other process never gets that process killed.
for entry in listener:activity-listener api:activity-api dynamodb:DynamoDBLocal.jar moto:moto_server; do
  name="${entry%%:*}"
  program="${entry#*:}"
  pidfile="$AH_RUN/$name.pid"
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" && [[ "$(ps -o args= -p "$pid" 2>/dev/null)" == *"$program"* ]]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.25; done
    if alive "$pid"; then
      echo "warning: $name (pid $pid) did not stop within 10 s of SIGTERM; sending SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do alive "$pid" || break; sleep 0.25; done
    fi
    if alive "$pid"; then
      echo "error: could not stop $name (pid $pid); see $AH_RUN/$name.log" >&2
      status=1
      continue # keep its pid file: it still names a running process
    fi
  fi
  rm -f "$pidfile"
done
exit "$status"
