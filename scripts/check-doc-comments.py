#!/usr/bin/env python3
"""Fails when a public declaration or a case of a public enum in Sources/ (library modules) has no `///` comment."""
import os
import re
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources")
problems = []
for directory, _, files in os.walk(root):
    if "AzureIoTCLI" in directory:
        continue
    for name in files:
        if not name.endswith(".swift"):
            continue
        path = os.path.join(directory, name)
        lines = open(path, encoding="utf-8").read().split("\n")
        depth = 0
        public_enums = []
        for index, line in enumerate(lines):
            text = line.strip()
            previous = index - 1
            while previous >= 0 and lines[previous].strip().startswith("@"):
                previous -= 1
            documented = previous >= 0 and lines[previous].strip().startswith("///")
            enum = re.match(r"(public )?(indirect )?enum \w+", text)
            if enum and text.endswith("{"):
                public_enums.append((depth + 1, bool(enum.group(1))))
            is_public = re.match(r"(@\w+(\([^)]*\))?\s+)*(public|open)\s", text) and not re.match(r"public (import|extension)", text)
            is_case = re.match(r"case \w", text) and public_enums and public_enums[-1] == (depth, True)
            if (is_public or is_case) and not documented:
                problems.append("%s:%d: %s" % (os.path.relpath(path, os.path.join(root, "..")), index + 1, text[:100]))
            depth += line.count("{") - line.count("}")
            while public_enums and depth < public_enums[-1][0]:
                public_enums.pop()
for problem in problems:
    print(problem)
print("%d public declarations without a doc comment" % len(problems))
sys.exit(1 if problems else 0)
