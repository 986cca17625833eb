#!/usr/bin/env bash
# Create / refresh the Python venv used for eval, CPT and the HF oracle.
#   bash scripts/setup_python.sh                 # silent when already set up
#   bash scripts/setup_python.sh --print-python  # also print the venv's python
# The venv lives at ${LESA_CACHE:-$HOME/.cache/lesa}/venv and is rebuilt when the
# sha256 of python/requirements.txt changes (stamp file inside the venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LESA_CACHE:-$HOME/.cache/lesa}"
VENV="$CACHE/venv"
REQ="$ROOT/python/requirements.txt"
STAMP="$VENV/.lesa-requirements.sha256"
PTH="$VENV/lib/python3.11/site-packages/lesa_py_src.pth"
PRINT=0
for a in "$@"; do
  case "$a" in
    --print-python) PRINT=1 ;;
    *) echo "setup_python.sh: unknown argument: $a" >&2; exit 2 ;;
  esac
done

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"

if [[ "$want" != "$have" || ! -x "$VENV/bin/python" ]]; then
  PY="${LESA_PYTHON:-}"
  # LESA_PYTHON often names this very venv's python, which the rebuild is about to delete:
  # use the interpreter it links to, or the search below when it is a copy inside the venv.
  if [[ -n "$PY" ]] && command -v "$PY" >/dev/null 2>&1; then
    PY="$(readlink -f "$(command -v "$PY")")"
    [[ "$PY" == "$(readlink -f "$VENV")"/* ]] && PY=""
  fi
  if [[ -z "$PY" ]]; then
    for c in python3.11 "$HOME/.pyenv/versions/3.11.7/bin/python3.11" python3; do
      if command -v "$c" >/dev/null 2>&1; then PY="$c"; break; fi
    done
  fi
  [[ -n "$PY" ]] || { echo "setup_python.sh: no python3.11 found" >&2; exit 1; }
  ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$ver" == "3.11" ]] || { echo "setup_python.sh: need Python 3.11, $PY is $ver" >&2; exit 1; }
  echo "setup_python.sh: (re)creating $VENV" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -r "$REQ" >&2
  echo "$want" > "$STAMP"
fi

# Make `import lesa_py` resolve to this checkout (cheap; rewritten if the repo moved).
if [[ "$(cat "$PTH" 2>/dev/null || true)" != "$ROOT/python" ]]; then
  echo "$ROOT/python" > "$PTH"
fi

if [[ $PRINT == 1 ]]; then echo "$VENV/bin/python"; fi
