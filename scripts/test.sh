#!/usr/bin/env bash
# Installs everything the test suite needs, then runs it: the README's test command and exactly
# what CI runs (.ci/run). Exits non-zero on any failure, including pytest's exit 5 when no test
# was collected.
#   bash scripts/test.sh [PYTEST ARGS]            the pinned versions of requirements-lock.txt
#   bash scripts/test.sh --latest [PYTEST ARGS]   the newest releases requirements-dev.txt allows
# System packages first (scripts/install_system_deps.sh: Debian packages with apt, and the npm
# package fluentui-emoji into ~/.cache/rtm-explorer or $RTM_SOURCES), then pip.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False
pins=(-c requirements-lock.txt)
if [ "${1:-}" = "--latest" ]; then
  shift
  pins=(--upgrade --upgrade-strategy eager)
  echo "test.sh --latest: the newest releases within requirements-dev.txt's ranges, not requirements-lock.txt;" \
       "once they pass, bash scripts/lock.sh pins them" >&2
fi
bash scripts/install_system_deps.sh
python -m pip install --quiet --disable-pip-version-check "${pins[@]}" -r requirements-dev.txt -e . \
  2> >(grep -v "^WARNING: Location .* is ignored" >&2)
python -m pytest "$@"
