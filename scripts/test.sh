#!/usr/bin/env bash
# Installs everything the test suite needs (scripts/install_system_deps.sh: Debian packages with apt,
# and the npm package fluentui-emoji into ~/.cache/rtm-explorer or $RTM_SOURCES; then pip), then runs it. This is the README's test
# command and exactly what CI runs (.ci/run); exits non-zero on any failure, including
# pytest's exit 5 when no test was collected.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False
bash scripts/install_system_deps.sh
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
python -m pytest "$@"
