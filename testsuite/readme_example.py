#!/usr/bin/env python3
"""The C example in README.md is the body of examples/hello.c's main, line for
line, so the code a newcomer copies is the code a test builds and runs.

    readme_example.py README.md examples/hello.c
"""
import sys

readme, source = (open(p).read() for p in sys.argv[1:3])
block = readme.split("```c\n", 1)[1].split("```", 1)[0].splitlines()
body = [line[4:] if line.startswith("    ") else line for line in source.splitlines()]
start = next((i for i, line in enumerate(body) if line == block[0]), None)
if start is None or body[start:start + len(block)] != block:
    print("README.md's C example differs from examples/hello.c's main")
    sys.exit(1)
print("README.md's example: %d lines, the same as examples/hello.c" % len(block))
