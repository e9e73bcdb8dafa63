#!/usr/bin/env bash
# Start a one-node Slurm (munged, slurmctld, slurmd) on this machine for comp's tests.
# Idempotent: installs what is missing, starts what is not running, exits 0 once the node is
# idle. Needs root; no systemd. Stop it with slurm/down.sh.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "up.sh: needs root" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
run=/run/comp-slurm   # pid files of the daemons started here; down.sh reads them
node=$(hostname -s)
conf=/etc/slurm/slurm.conf
# Is daemon $1 running with the pid it recorded? (comm check: pids get reused)
alive() { local pid; pid=$(cat "$run/$1.pid" 2>/dev/null) && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; }

# Packages. policy-rc.d exit 101 keeps their postinst scripts from starting daemons of their own.
if [ "$(dpkg-query -W -f='${db:Status-Abbrev}\n' slurm-wlm munge 2>/dev/null | grep -c '^ii')" != 2 ]; then
  export DEBIAN_FRONTEND=noninteractive
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; }
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# Munge key (the package usually makes one) and the directories the daemons write to.
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
install -d -m 755 "$run" /var/lib/slurm
install -d -o munge -g munge -m 755 /run/munge /var/log/munge /var/lib/munge
install -d -o slurm -g slurm -m 755 /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd

# slurm.conf: this machine's CPU layout as slurmd detects it, 90% of its memory (headroom for
# the daemons and the OS), each CPU's default share of that memory.
hw=$(slurmd -C | sed -n '1{s/^NodeName=[^ ]* //;s/ RealMemory=.*//;p}')
cpus=$(sed 's/^CPUs=\([0-9]*\).*/\1/' <<<"$hw")
mem=$(( $(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo) * 9 / 10 ))
sed -e "s/@NODE@/$node/g" -e "s/@HW@/$hw/" -e "s/@MEM@/$mem/" -e "s/@DEFMEM@/$((mem / cpus))/" \
    -e "s|@RUNDIR@|$run|g" "$here/slurm.conf.in" >"$conf.new"
if cmp -s "$conf.new" "$conf"; then rm "$conf.new"
else mv "$conf.new" "$conf"; "$here/down.sh" >/dev/null  # new config: restart what runs
fi

# Daemons; each forks into the background and writes its own pid file.
if ! alive munged; then
  runuser -u munge -- /usr/sbin/munged
  cp /run/munge/munged.pid "$run/munged.pid"
fi
alive slurmctld || /usr/sbin/slurmctld
alive slurmd || /usr/sbin/slurmd

# Wait for the node to be idle; a node left down or drained by an earlier run is resumed.
for _ in $(seq 60); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
case "$state" in idle|mixed|allocated|completing) ;;
  *) echo "up.sh: node $node is '$state'; see /var/log/slurm/" >&2; exit 1 ;; esac
echo "slurm up: node $node, $cpus cpus, $mem MB"
