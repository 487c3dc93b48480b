#!/usr/bin/env bash
# Launch sdui: creates .venv when missing, installs the pinned dependencies, starts the web UI.
#   ./webui.sh [--port 7860] [--listen] [--share --gradio-auth user:pass] [--api] ...
#   ./webui.sh --exit    install everything, then exit
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
sdui_setup
for arg in "$@"; do
  if [ "$arg" = "--exit" ]; then
    echo "sdui: installation complete (--exit given, not launching)"
    exit 0
  fi
done
exec .venv/bin/python app.py "$@"
