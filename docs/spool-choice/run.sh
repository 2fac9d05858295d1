#!/bin/sh
# Runs every measurement in RESULTS.md; output goes to results/.
# PASS=pass2- ./run.sh repeats the three benchmarks into results/pass2-*
# (RESULTS.md's second run); the checks run only in the first pass.
set -eu
cd "$(dirname "$0")"
mkdir -p results
P=${PASS:-}
if [ -z "$P" ]; then
	{
		echo "nproc: $(nproc)"
		echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
		echo "fs of /work: $(findmnt -no FSTYPE,OPTIONS -T /work)"
		echo "fs of /tmp: $(findmnt -no FSTYPE -T /tmp) ($(stat -f -c %T /tmp)), device $(df --output=source /tmp | tail -1) = $(df --output=source /work | tail -1)"
		go version
		uname -r
	} > results/machine.txt
fi
go run . -n 20000 -c 32 -size 600 -json results/${P}a-c32-600.json > results/${P}a-c32-600.md 2> results/${P}a.log
go run . -n 20000 -c 1 -size 600 -json results/${P}b-c1-600.json > results/${P}b-c1-600.md 2> results/${P}b.log
go run . -n 20000 -c 16 -size 30000 -json results/${P}c-c16-30k.json > results/${P}c-c16-30k.md 2> results/${P}c.log
if [ -z "$P" ]; then
	go run . -crash -runs 5 -c 32 -size 600 > results/crash.md 2> results/crash.log
	go run . -torn > results/torn.md
fi
