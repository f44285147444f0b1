"""MkDocs hooks of the documentation site (mkdocs.yml ``hooks:``); not a page.

The docstrings are written with Sphinx roles (``:class:`envs.core.GridCore```), which Markdown
renders as the role's name before the code span; the API pages show the code span alone.
"""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const|term|ref):(<code>)~?")


def on_page_content(html: str, **kwargs) -> str:
    return ROLE.sub(r"\1", html)
