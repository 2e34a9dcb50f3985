#!/bin/sh
# Container entrypoint: `serve` (the default) applies the migrations first, as its own step, so a
# migration failure is one clear exit before anything listens; then the server replaces this
# shell (exec) and receives SIGTERM itself. Anything else is a kotani-receiver subcommand.
set -eu
if [ "$#" -eq 0 ] || [ "$1" = "serve" ]; then
    if [ "$#" -gt 0 ]; then shift; fi
    kotani-receiver db upgrade
    exec kotani-receiver serve "$@"
fi
exec kotani-receiver "$@"
