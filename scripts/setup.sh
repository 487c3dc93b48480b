# Shared setup for webui.sh and test.sh: create .venv and install the pinned dependencies once.
# Sourced, not executed. `sdui_setup` installs the runtime; `sdui_setup test` adds the test tools.
# Re-running is fast: a stamp file per requirements file records the hash that was installed.

_sdui_pip() {
  # pip's warnings about this machine's extra package indexes are noise here; errors still show.
  .venv/bin/python -m pip install --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}

_sdui_stale() {  # true when $1 changed since it was last installed
  local stamp=".venv/.sdui-installed-$1"
  [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(sha256sum "$1" | cut -d' ' -f1)" ]
}

_sdui_stamp() {
  sha256sum "$1" | cut -d' ' -f1 > ".venv/.sdui-installed-$1"
}

sdui_setup() {
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "sdui: creating .venv with $($python --version 2>&1)"
    "$python" -m venv .venv
  fi
  if _sdui_stale requirements.txt; then
    echo "sdui: installing pinned dependencies into .venv (the first run takes a few minutes)"
    # torch first and alone: asked for by version only, pip takes the CPU build where one is
    # provided locally; letting another package pull it could bring a multi-GB CUDA build.
    _sdui_pip "$(grep -m1 '^torch==' requirements.txt)"  # the one pin, from requirements.txt
    _sdui_pip -r requirements.txt
    # Only the CLIP BPE vocabulary file of open-clip-torch is used; its dependencies
    # (torchvision) would replace or break torch, so none are installed.
    _sdui_pip --no-deps "open-clip-torch==3.3.0"
    # Upscaler architectures; spandrel asks for torchvision, which only two non-upscaler
    # architectures import: sdui/upscalers/spandrel_import.py stands in for it when it is missing.
    _sdui_pip --no-deps "spandrel==0.4.2"
    if .venv/bin/python -c "import torchvision" 2>/dev/null; then
      echo "sdui: torchvision is installed in .venv; it breaks torch/diffusers, removing it"
      .venv/bin/python -m pip uninstall -y -q torchvision
    fi
    _sdui_stamp requirements.txt
  fi
  if [ "${1:-}" = test ] && _sdui_stale requirements-test.txt; then
    echo "sdui: installing pinned test dependencies into .venv"
    _sdui_pip -r requirements-test.txt
    _sdui_stamp requirements-test.txt
  fi
}
