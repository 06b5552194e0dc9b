#!/usr/bin/env bash
# Coverage-guided fuzzing for a short, bounded time per target (libFuzzer through cargo-fuzz,
# on the stable toolchain with RUSTC_BOOTSTRAP=1 and no sanitizer), over a scratch copy of the
# checked-in minimized corpus. A crash, a panic or a timeout fails the run.
# Falls back to the stable smoke run when cargo-fuzz cannot be installed.
#   FUZZ_SECONDS   seconds per target (default 15)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECONDS:-15}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "[fuzz] installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked --quiet; then
    echo "[fuzz] cargo-fuzz could not be installed: running the stable smoke run instead"
    exec cargo run --quiet --release --manifest-path smoke/Cargo.toml
  fi
fi

export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build --sanitizer none -O
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $targets; do
  mkdir -p "$work/$t"
  [ -d "corpus/$t" ] && cp -R "corpus/$t/." "$work/$t/"
  echo "--- fuzz $t for ${secs}s"
  # -timeout: one input taking more than 10 s is a finding (a parser that can be made to hang).
  status=0
  cargo fuzz run --sanitizer none -O "$t" "$work/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    >"$work/$t.log" 2>&1 || status=$?
  grep -aE '^stat::(number_of_executed_units|new_units_added)' "$work/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$work/$t.log" >&2
    echo "[fuzz] $t: finding (exit $status); the input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
done
echo "[fuzz] all targets ran ${secs}s each without a finding"
