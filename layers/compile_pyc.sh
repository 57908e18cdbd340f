#!/usr/bin/env bash
# Precompile a layer's python/ for the Lambda runtime (python3.12). /opt is read-only on
# Lambda, so bytecode that is not shipped is recompiled on every cold start.
# Uses unchecked-hash pycs: zip archives keep mtimes only to 2 s, which would invalidate
# timestamp-based ones. Without a python3.12 here the layer still works, only slower to start.
set -euo pipefail
target="$1"
find_312() {
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    command -v python3.12; return
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for dir in "$(pyenv root)"/versions/3.12*; do
      if [ -x "$dir/bin/python3.12" ]; then echo "$dir/bin/python3.12"; return; fi
    done
  fi
}
py312="$(find_312 || true)"
if [ -z "$py312" ]; then
  echo "compile_pyc: no python3.12 found; $target ships without bytecode (slower cold starts)" >&2
  exit 0
fi
"$py312" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$target" >/dev/null
