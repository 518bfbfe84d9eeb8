#!/usr/bin/env python3
"""Splits the JSON lines of a several-adapter `recalign eval --json` into one
RUN_DIR/eval-NAME-TAG.json per model, in the order the models were given.
Usage: scripts/split-eval-lines.py RUN_DIR TAG LINES_FILE NAME..."""
import pathlib, sys

run, tag, out, names = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
lines = open(out).read().splitlines()
if len(lines) != len(names):
    sys.exit(f"{out}: {len(lines)} reports for {len(names)} models")
for name, line in zip(names, lines):
    (run / f"eval-{name}-{tag}.json").write_text(line + "\n")
