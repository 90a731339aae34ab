#!/usr/bin/env bash
# Install a single-node SLURM (controller, compute daemon, client tools) and MUNGE from
# Debian's packages, for tests/test_slurm.py, which starts its own throw-away cluster and
# runs workflows through profiles/slurm. Idempotent: does nothing when all is installed.
#
# The daemons are not started here: tests/slurm_cluster.py starts and stops its own, with
# its own configuration, key and ports, and leaves the system's /etc/slurm alone.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-slurm: ${packages[*]} already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-slurm: not root, cannot install ${missing[*]}; the SLURM tests will be skipped" >&2
    exit 0
fi

echo "install-slurm: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Keep the packages' install scripts from starting the daemons (a container has no init
# system to run them, and the tests run their own): policy-rc.d answering 101 says "no".
policy_rc=/usr/sbin/policy-rc.d
if [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
    chmod +x "$policy_rc"
    trap 'rm -f "$policy_rc"' EXIT
fi

# A stale package list makes apt-get install fail with 404s.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-slurm: done ($(slurmctld -V))"
