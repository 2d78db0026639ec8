#!/usr/bin/env bash
# `buf breaking` for `make lint`: the protos must not break the contract they replace.
#
# What they are compared with ("the previous commit" of the contract):
#   - protos/ has uncommitted changes: HEAD, the contract as committed;
#   - otherwise: the parent of the last commit that changed protos/, so the latest
#     change to the contract is checked on every run, however many commits came after
#     it (comparing with HEAD~1 would pass vacuously after any unrelated commit).
# The commit that split lift.v1 into lift.{common,critic,generator,trainer}.v1 broke
# the contract on purpose (issue 15: new packages, typed trainer messages). A base
# without protos/lift/common/v1 predates that split: there is nothing of this layout
# to break, so the check says so and passes; every later change is checked.
# A clone without the base commit (a shallow clone) fails: fetch the history.
set -euo pipefail

BUF=${BUF:-.tools/node_modules/.bin/buf}
cd "$(git rev-parse --show-toplevel)"
BUF=$(realpath "$BUF")

if ! git diff --quiet HEAD -- protos || [ -n "$(git ls-files --others --exclude-standard protos)" ]; then
    base=$(git rev-parse HEAD)
else
    last=$(git log -1 --format=%H -- protos)
    if ! base=$(git rev-parse --verify -q "$last^"); then
        echo "buf breaking: the last protos/ change ($last) has no parent here; a shallow clone? run: git fetch --unshallow" >&2
        exit 1
    fi
fi

if ! git cat-file -e "$base:protos/lift/common/v1/common.proto" 2>/dev/null; then
    echo "buf breaking: skipped, ${base:0:12} predates the per-service packages (the lift.v1 split was a deliberate break)"
    exit 0
fi

echo "buf breaking: protos against ${base:0:12}"
cd protos
"$BUF" breaking --against "../.git#ref=$base,subdir=protos"
