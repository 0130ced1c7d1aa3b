"""Prints one line per engine from the JUnit XML files of `make test`, and fails when an engine's
run is missing or ran no test."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(paths: list[str]) -> int:
    status = 0
    print("\n== asyncwasm test summary ==")
    for name in paths:
        path = Path(name)
        engine = path.stem.removeprefix("junit-")
        if not path.exists():
            print(f"{engine}: NO RESULTS (the run did not complete)")
            status = 1
            continue
        suite = ET.parse(path).getroot()
        if suite.tag == "testsuites":
            suite = suite[0]
        total = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        passed = total - failed - skipped
        print(f"{engine}: {passed} passed, {failed} failed, {skipped} skipped")
        print(f"  ({engine} run took {float(suite.get('time', 0)):.1f} s)")
        if failed or passed == 0:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
