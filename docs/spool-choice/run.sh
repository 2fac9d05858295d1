#!/bin/sh
# Runs every measurement in RESULTS.md; output goes to results/.
set -eu
cd "$(dirname "$0")"
mkdir -p results
{
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
	echo "fs of /work: $(findmnt -no FSTYPE,OPTIONS -T /work)"
	echo "fs of /tmp: $(findmnt -no FSTYPE -T /tmp) ($(stat -f -c %T /tmp)), device $(df --output=source /tmp | tail -1) = $(df --output=source /work | tail -1)"
	go version
	uname -r
} > results/machine.txt
go run . -n 20000 -c 32 -size 600 -json results/a-c32-600.json | tee results/a-c32-600.md
go run . -n 20000 -c 1 -size 600 -json results/b-c1-600.json | tee results/b-c1-600.md
go run . -n 20000 -c 16 -size 30000 -json results/c-c16-30k.json | tee results/c-c16-30k.md
go run . -crash -runs 5 -c 32 -size 600 | tee results/crash.md
