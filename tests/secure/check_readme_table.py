#!/usr/bin/env python3
"""Checks README.md's table of misuses against the tests that show each row.

Every row of the table (its first cell, verbatim) is named by a `README row:` comment
above each test that shows it, in the files given; every test of misuse_test.cpp has one. The check fails when a row
has no test, when a tag names no row, when a test of misuse_test.cpp has no row, or
when a message a row quotes (`...` in its default or secure cell) is in no string
literal of its tests' files (the message a death test expects).

Usage: check_readme_table.py README.md TEST_FILE...
"""
import re
import sys


def table_rows(readme):
    rows, inside = [], False
    for line in open(readme, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("| misuse | default | secure |"):
            inside = True
            continue
        if not inside:
            continue
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set(cells[0]) <= set("-"):
            continue  # the separator
        if len(cells) != 3:
            sys.exit(f"check_readme_table: README row has {len(cells)} cells: {line}")
        rows.append(cells)
    if not rows:
        sys.exit(f"check_readme_table: no '| misuse | default | secure |' table in {readme}")
    return rows


TAG = re.compile(r"(?://|#)\s*README row:\s*(.+?)\s*$")
TEST = re.compile(r"^TEST(?:_F)?\((\w+),\s*(\w+)\)")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rows = table_rows(sys.argv[1])
    names = {r[0] for r in rows}
    tagged = {}  # row -> files whose tests show it
    errors = []
    for path in sys.argv[2:]:
        text = open(path, encoding="utf-8").read()
        tag_since_last_test = False
        for number, line in enumerate(text.splitlines(), 1):
            m = TAG.search(line)
            if m:
                row = m.group(1)
                if row not in names:
                    errors.append(f"{path}:{number}: tag names no README row: '{row}'")
                tagged.setdefault(row, set()).add(path)
                tag_since_last_test = True
                continue
            t = TEST.match(line)
            if not t:
                continue
            if path.endswith("misuse_test.cpp") and not tag_since_last_test:
                errors.append(f"{path}:{number}: {t.group(2)} shows no README row (no tag above it)")
            tag_since_last_test = False
    for misuse, default, secure in rows:
        files = tagged.get(misuse)
        if not files:
            errors.append(f"README row '{misuse}' has no test tagged with it")
            continue
        sources = "".join(open(f, encoding="utf-8").read() for f in files)
        for message in re.findall(r"`([^`]+)`", default + " " + secure):
            if not re.search(r'"[^"\n]*' + re.escape(message), sources):
                errors.append(f"README row '{misuse}' quotes `{message}`, which none of its "
                              f"tests' files ({', '.join(sorted(files))}) expects")
    for e in errors:
        print("check_readme_table:", e)
    if errors:
        return 1
    print(f"check_readme_table: {len(rows)} rows, each shown by its tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
