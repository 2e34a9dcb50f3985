#!/usr/bin/env bash
# Install a real LNbits into its own virtualenv for the test suite (tests/lightning/lnbits_server.py).
# LNbits pins many dependencies, so it never shares the service's environment.
# bolt11 (an LNbits dependency) fails to import with bitstring 5, hence 'bitstring<5'.
# Idempotent: does nothing when the pinned version is already installed.
set -euo pipefail

LNBITS_VERSION="${KOTANI_LNBITS_VERSION:-1.6.2}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${KOTANI_LNBITS_VENV:-$(cd "$HERE/../.." && pwd)/.venv-lnbits}"
PYTHON="${KOTANI_LNBITS_PYTHON:-python3.11}"

if [ -x "$VENV/bin/lnbits" ] && "$VENV/bin/python" - "$LNBITS_VERSION" <<'PY'
import sys
from importlib.metadata import version
sys.exit(0 if version("lnbits") == sys.argv[1] else 1)
PY
then
  echo "lnbits $LNBITS_VERSION already installed in $VENV"
  exit 0
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "lnbits==$LNBITS_VERSION" 'bitstring<5'
echo "lnbits $LNBITS_VERSION installed in $VENV"
