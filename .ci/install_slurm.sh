#!/usr/bin/env bash
# Install a local single-node SLURM (Debian packages) for the cluster test
# (tests/test_slurm_smoke.py starts and stops the daemons itself).
# Idempotent; exits 0 with a message where it cannot install (not root, no
# apt-get): the test then skips and says why.
set -u
pkgs=(slurmctld slurmd slurm-client munge)
have_all() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 &&
        command -v sbatch >/dev/null 2>&1 &&
        { command -v munged >/dev/null 2>&1 || [ -x /usr/sbin/munged ]; }
}
if have_all; then
    echo "install_slurm: SLURM and munge already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_slurm: not root; not installing SLURM (the cluster test will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_slurm: no apt-get; not installing SLURM (the cluster test will skip)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "install_slurm: apt-get update failed"; exit 1; }
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${pkgs[@]}" >/dev/null || { echo "install_slurm: apt-get install failed"; exit 1; }
if have_all; then
    echo "install_slurm: installed ${pkgs[*]}"
else
    echo "install_slurm: packages installed but SLURM binaries not found"; exit 1
fi
