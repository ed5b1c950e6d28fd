#!/usr/bin/env bash
# A Python environment with MLflow from PyPI for the tracking tests (tests/tracking/test_mlflow.py
# starts `mlflow server` from it and reads runs back with its client). Prints the environment's
# python. Reused while it holds the pinned version; DEBLUR_MLFLOW_VENV moves it.
set -euo pipefail
cd "$(dirname "$0")/.."
# 3.17.2: the newest whose dependencies (mlflow-tracing, mlflow-skinny) are all on PyPI's mirror here.
version=3.17.2
venv="${DEBLUR_MLFLOW_VENV:-.venv-mlflow}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import mlflow, sys; sys.exit(mlflow.__version__ != '$version')" 2>/dev/null; then
  echo "$(cd "$venv" && pwd)/bin/python"
  exit 0
fi
rm -rf "$venv"
if ! python3 -m venv "$venv" >&2 2>/dev/null; then
  # Debian's own python3 needs python3-venv for ensurepip.
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
fi
echo "setup_mlflow: installing mlflow==$version into $venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check "mlflow==$version" >&2
echo "$(cd "$venv" && pwd)/bin/python"
