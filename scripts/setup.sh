# Sourced by test.sh and app.sh: make sure .venv exists and holds the pinned requirements.
# Re-installs only when a requirements file changed (a hash is kept in .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
want=$(cat requirements.txt requirements-dev.txt requirements-import.txt | sha256sum | cut -d' ' -f1)
have=$(cat .venv/.requirements.sha256 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "installing requirements into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r requirements.txt -r requirements-dev.txt -r requirements-import.txt
  echo "$want" > .venv/.requirements.sha256
fi
