#!/usr/bin/env bash
# Writes requirements-lock.txt: the exact version of every package the test suite installs, as pip
# resolves requirements-dev.txt today (newest releases within its ranges). scripts/test.sh installs
# with it as constraints, so that a release on the registry cannot turn a green main red overnight.
# Refresh it after `bash scripts/test.sh --latest` has passed with the newest releases.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0
fi
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
python -m pip install --quiet --disable-pip-version-check --dry-run --ignore-installed --report "$report" \
  -r requirements-dev.txt 2> >(grep -v "^WARNING: Location" >&2)
python - "$report" > requirements-lock.txt <<'PY'
import datetime, json, platform, sys
report = json.load(open(sys.argv[1]))
pins = sorted((i["metadata"]["name"].lower(), i["metadata"]["version"].split("+")[0]) for i in report["install"])
print("# Exact versions of everything the test suite installs: pip constraints for scripts/test.sh.")
print(f"# Made by scripts/lock.sh on {datetime.date.today()} (Python {platform.python_version()}, {platform.machine()});")
print("# `bash scripts/test.sh --latest` tries the newest releases instead.")
for name, version in pins:
    print(f"{name}=={version}")
PY
echo "wrote requirements-lock.txt ($(grep -vc '^#' requirements-lock.txt) packages)"
