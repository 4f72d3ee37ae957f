#!/usr/bin/env bash
# One command from a fresh clone: set up .venv and serve the app on localhost.
#   bash scripts/app.sh              http://127.0.0.1:8501
#   PORT=8600 bash scripts/app.sh
#   bash scripts/app.sh --server.address 0.0.0.0 --server.allowedHosts lab.example.org
# Extra arguments go to `streamlit run` (see .streamlit/config.toml for the defaults).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
port=${PORT:-8501}
echo "Danlu: open http://127.0.0.1:${port} (runs in ${DANLU_RUNS_DIR:-./runs})"
exec .venv/bin/python -m streamlit run app.py --server.port "$port" "$@"
