#!/usr/bin/env bash
# Installs the open FPGA toolchain and simulators from Debian's packages (needs root or sudo).
# Skips the download when every tool is already there.
set -euo pipefail
packages=(yosys nextpnr-ice40 fpga-icestorm iverilog verilator g++ make libevent-dev libjson-c-dev zlib1g-dev)
tools=(yosys nextpnr-ice40 icepack iceprog iverilog vvp verilator g++ make)
missing=0
for tool in "${tools[@]}"; do command -v "$tool" >/dev/null || missing=1; done
# The Verilator SoC simulation links LiteX's C harness against these.
for package in libevent-dev libjson-c-dev zlib1g-dev; do dpkg -s "$package" >/dev/null 2>&1 || missing=1; done
if [ "$missing" = 0 ]; then
    echo "FPGA toolchain already installed"
    exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
