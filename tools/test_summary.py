"""Prints the summary of `make test`: the lint gate's result, then one line per test leg from its
JUnit XML file. Fails when a leg's results are missing or it ran no test; a leg that was skipped
(its Python is not on this machine, outside CI) leaves a ``.skipped`` file next to where its XML
would be, holding the reason, and is reported as skipped.

    python tools/test_summary.py [--lint passed|FAILED] [LABEL=]JUNIT.xml ...
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def leg_line(label: str, path: Path) -> tuple[str, bool]:
    """The summary line of one leg, and whether the leg is a failure."""
    skipped = path.with_suffix(".skipped")
    if not path.exists():
        if skipped.exists():
            return f"{label}: SKIPPED ({skipped.read_text().strip()})", False
        return f"{label}: NO RESULTS (the run did not complete)", True
    suite = ET.parse(path).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    total = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skips = int(suite.get("skipped", 0))
    # JUnit has no xfail: pytest writes an expected failure as a skip of type pytest.xfail.
    xfailed = sum(1 for s in suite.iter("skipped") if s.get("type") == "pytest.xfail")
    passed = total - failed - skips
    seconds = float(suite.get("time", 0))
    line = (
        f"{label}: {passed} passed, {failed} failed, {skips - xfailed} skipped, "
        f"{xfailed} xfailed ({seconds:.0f} s)"
    )
    return line, bool(failed or passed == 0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lint", help="the lint gate's result, as `make test` saw it")
    parser.add_argument("legs", nargs="+", metavar="[LABEL=]JUNIT.xml")
    args = parser.parse_args(argv)
    status = 0
    print("\n== asyncwasm test summary ==")
    if args.lint is not None:
        print(f"lint (ruff, ruff format, mypy --strict, layering): {args.lint}")
        status |= args.lint != "passed"
    for leg in args.legs:
        label, sep, name = leg.rpartition("=")
        path = Path(name)
        line, failed = leg_line(label if sep else path.stem.removeprefix("junit-"), path)
        print(line)
        status |= failed
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
