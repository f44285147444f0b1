"""Print the suite's Markdown table from its results file: ``python docs/suite_table.py <suite_results.json>``.

The README's suite table is regenerated from the ``suite_results.json`` that
``python -m experiments.suite`` writes in its report folder, so the table
cites a committed result (command, date, git commit and wall time above it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.report import suite_markdown  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python docs/suite_table.py <suite_results.json>", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"suite_table: cannot read {path}: {err}", file=sys.stderr)
        return 2
    if not isinstance(results, dict) or "entries" not in results:
        print(f"suite_table: {path} is not a suite_results.json (no 'entries')", file=sys.stderr)
        return 2
    print(suite_markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
