#!/usr/bin/env bash
# Set up like webui.sh (plus test dependencies and Chromium), then run the whole test suite.
#   ./test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
sdui_setup test
if [ ! -x /usr/bin/chromium ]; then
  echo "sdui: installing Debian chromium for the browser tests"
  sudo_cmd=""
  [ "$(id -u)" != 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python -m pytest "$@"
