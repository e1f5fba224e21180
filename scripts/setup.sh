#!/usr/bin/env bash
# Create the virtual environment and install emostream with its dev tools and the pipecat and
# livekit extras.
# As root on Debian, also install the system packages listed in scripts/apt-packages.txt;
# otherwise print the exact apt line for the ones that are missing.
set -euo pipefail
VENV="${1:-.venv}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mapfile -t PKGS < <(grep -v '^\s*#' "$HERE/apt-packages.txt" | grep -v '^\s*$')

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
  fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first, pinned, so nothing else can pull a CUDA build.
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
# The voice-agent extras (Pipecat, LiveKit Agents) and Ray are installed too: their tests (the
# two-node Ray test included) run in `make test`.
"$VENV/bin/python" -m pip install -q -e ".[dev,pipecat,livekit,ray]"
# silero-vad declares torch as a dependency; we only need its bundled ONNX model.
"$VENV/bin/python" -m pip install -q --no-deps "silero-vad>=6"
# mediapipe 0.10.21 bundles the face-detection / face-mesh / iris TFLite models (Apache-2.0) that the
# renderer runs through ai-edge-litert; it pins numpy<2, so install its files only and never import it.
"$VENV/bin/python" -m pip install -q --no-deps "mediapipe==0.10.21"
echo "setup: done ($("$VENV/bin/python" -c 'import emostream; print("emostream", emostream.__version__)'))"
