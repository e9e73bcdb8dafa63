#!/usr/bin/env bash
# Stop the daemons slurm/up.sh started, by the pids it recorded. Idempotent.
# Jobs still running keep running (their slurmstepd is not a daemon of ours) until up.sh again.
set -euo pipefail
run=/run/comp-slurm
for d in slurmd slurmctld munged; do
  f=$run/$d.pid
  pid=$(cat "$f" 2>/dev/null || true)
  # Only signal the pid if it still is that daemon (pids get reused).
  if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$d" ]; then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$f"
done
echo "slurm down"
