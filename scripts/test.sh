#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, install Chromium for the browser test, lint, test.
#   bash scripts/test.sh            every test
#   bash scripts/test.sh -k store   extra arguments go to pytest
set -euo pipefail
source "$(dirname "$0")/setup.sh"
# The tests also run the Ray executor on a local cluster: Ray has a requirements file of its own so
# that the app's install (setup.sh) stays lean.
want_ray=$(sha256sum requirements-ray.txt | cut -d' ' -f1)
if [ "$want_ray" != "$(cat .venv/.requirements-ray.sha256 2>/dev/null || true)" ]; then
  echo "installing requirements-ray.txt into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt
  echo "$want_ray" > .venv/.requirements-ray.sha256
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "chromium is missing and this is not root: the browser test will say it is skipped"
  fi
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
