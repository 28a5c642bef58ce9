#!/usr/bin/env bash
# Foreground YCSB-A throughput with anti-entropy passes running back to back vs off.
set -u
B=${RINGDB_RELEASE:-target/release}
D=/tmp/aae-drop-data
HOSTS=127.0.0.1:7801,127.0.0.1:7802,127.0.0.1:7803
run() { # $1 label, rest: serve args
  label=$1; shift
  $B/ringdb dev --nodes 3 --base-port 7801 --data-dir $D -- "$@" > /tmp/aae-dev.log 2>&1 &
  pid=$!
  until grep -q "Press Ctrl-C" /tmp/aae-dev.log; do sleep 0.5; done
  if [ ! -f $D/.loaded ]; then
    $B/ringdb-bench --hosts $HOSTS --workload load --records 50000 | tail -1 >&2
    touch $D/.loaded
  fi
  line=$($B/ringdb-bench --hosts $HOSTS --workload a --records 50000 --duration 20 | tail -1)
  echo "$label $line"
  kill -INT $pid; wait $pid 2>/dev/null
}
rm -rf $D
for i in 1 2; do
  run off --aae-interval-secs 0
  run on --aae-interval-secs 1
done
