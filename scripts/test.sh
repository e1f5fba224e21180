#!/usr/bin/env bash
# Run the test suite. pytest's exit code 5 ("no tests collected") is a failure here:
# a suite that collects nothing has not tested anything.
set -uo pipefail
VENV="${1:-.venv}"
"$VENV/bin/python" -m pytest -q -ra "${@:2}"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "test: pytest collected no tests (exit 5) - treating as failure" >&2
  exit 1
fi
exit $rc
