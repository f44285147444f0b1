"""Check that every relative link of a Markdown file resolves: ``python docs/check_links.py README.md``.

A link's file must exist (relative to the Markdown file), and a ``#anchor`` into a Markdown file
must name one of its headings (slugs as MkDocs makes them). Links inside code blocks and to
``http(s)://`` addresses are not checked. Exit code 1 names each broken link. ``make docs`` runs
it on the README; ``mkdocs build --strict`` checks the site's own pages.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", flags=re.S)
HEADING = re.compile(r"^#+\s+(.*?)\s*$", flags=re.M)


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (its default slugify)."""
    text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def broken_links(markdown: Path) -> list[str]:
    text = FENCE.sub("", markdown.read_text())
    problems = []
    for match in LINK.finditer(text):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (markdown.parent / path) if path else markdown
        if not file.exists():
            problems.append(f"{markdown}: {target}: no such file")
        elif anchor and file.suffix == ".md":
            if anchor not in {slug(h) for h in HEADING.findall(FENCE.sub("", file.read_text()))}:
                problems.append(f"{markdown}: {target}: no heading #{anchor} in {file}")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python docs/check_links.py FILE.md [FILE.md ...]", file=sys.stderr)
        return 2
    problems = [p for name in argv for p in broken_links(Path(name))]
    for problem in problems:
        print(f"broken link: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
