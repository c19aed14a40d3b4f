# Sourced by scripts/up and scripts/test: idempotent set-up of .venv with the project installed
# editable (with its test extras) and the gRPC stubs generated. Re-installs only when the
# packaging or the .proto files changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  local c
  for c in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$c"; return 0
    fi
  done
  echo "dynalab needs Python >= 3.11 on PATH (or PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
fi
stamp="$(cat pyproject.toml setup.py proto/*.proto | sha256sum | cut -d' ' -f1)"
if [ "$(cat .venv/.dynalab-installed 2>/dev/null)" != "$stamp" ] \
   || ! .venv/bin/python -c 'import proto.raft_pb2, dynalab' >/dev/null 2>&1; then
  echo "setting up .venv (installing dynalab editable with test extras, generating stubs)..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  echo "$stamp" > .venv/.dynalab-installed
fi
