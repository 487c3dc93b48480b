# Shared setup for webui.sh and test.sh: create .venv and install the pinned dependencies once.
# Sourced, not executed. Set SDUI_WITH_TEST_DEPS=1 to add the test dependencies.
# Re-running is fast: a stamp file records the hash of the requirement files that were installed.

sdui_setup() {
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "sdui: creating .venv with $($python --version 2>&1)"
    "$python" -m venv .venv
  fi
  local files="requirements.txt"
  [ "${SDUI_WITH_TEST_DEPS:-0}" = 1 ] && files="$files requirements-test.txt"
  local want
  want=$(cat $files | sha256sum | cut -d' ' -f1)
  local stamp=".venv/.sdui-installed-$(echo "$files" | tr ' ' '+')"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "sdui: installing pinned dependencies into .venv (first run takes a few minutes)"
  local pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)
  # torch first and alone: asked for by version only, pip takes the CPU build where one is
  # provided locally; letting another package pull it could bring a multi-GB CUDA build.
  "${pip[@]}" "torch==2.13.0"
  "${pip[@]}" -r requirements.txt
  # Only the CLIP BPE vocabulary file of open-clip-torch is used; its dependencies
  # (torchvision) would replace or break torch, so none are installed.
  "${pip[@]}" --no-deps "open-clip-torch==3.3.0"
  if [ "${SDUI_WITH_TEST_DEPS:-0}" = 1 ]; then
    "${pip[@]}" -r requirements-test.txt
  fi
  if .venv/bin/python -c "import torchvision" 2>/dev/null; then
    echo "sdui: torchvision is installed in .venv; it breaks torch/diffusers, removing it"
    .venv/bin/python -m pip uninstall -y -q torchvision
  fi
  echo "$want" > "$stamp"
}
