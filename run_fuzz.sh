#!/bin/bash
cd /work/wt/fuzzing/fuzz
export CARGO_TARGET_DIR=/work/tgt/fuzzing
for t in jwks_parse jws_decode_verify refresh_token_parse device_handshake_parse dpop_verify; do
  mkdir -p /tmp/fuzzwork/$t
  RUSTC_BOOTSTRAP=1 nice -n 10 cargo fuzz run --sanitizer none -O $t /tmp/fuzzwork/$t corpus/$t -- -runs=10000000 -rss_limit_mb=2048 -max_len=16384 > /tmp/fuzz-$t.log 2>&1
  echo "$t exit $?" >> /tmp/fuzz-summary.log
done
