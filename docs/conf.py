"""Sphinx configuration of the trio_tasks documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``; run the
examples written in the pages: ``python -m sphinx -W -b doctest docs docs/_build/doctest``.
Besides Sphinx's own extensions and the furo theme, myst-parser is used: it renders the
one Markdown page, performance.md, which the benchmarks issue asks for as Markdown (so
that GitHub shows its generated tables too); every other page is reStructuredText.
Nothing needs the network (no intersphinx).
"""

from __future__ import annotations

import sys
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's trio_tasks, even if it was not installed
sys.path.insert(1, str(ROOT / "docs" / "examples"))  # testcode blocks import the example programs

import trio_tasks  # noqa: E402

project = "trio_tasks"
author = "the trio_tasks authors"
copyright = "the trio_tasks authors"
release = version = trio_tasks.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3  # a Markdown page links to its own sections: [Targets](#targets)

exclude_patterns = ["_build", "examples"]
root_doc = "index"
language = "en"

html_theme = "furo"
html_title = f"trio_tasks {release}"
html_show_sourcelink = False

# The public names are documented as trio_tasks.X, whatever module defines them.
add_module_names = False
python_use_unqualified_type_names = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = False
autodoc_default_options = {"members": True}

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Doctests (``>>>`` in pages and docstrings, testcode blocks) see the public API.
doctest_global_setup = """
import trio
import trio.testing
from trio_tasks import *
"""
doctest_test_doctest_blocks = "default"


def _on_missing_reference(
    app: Sphinx, env: BuildEnvironment, node: nodes.Element, contnode: nodes.TextElement
) -> nodes.Node | None:
    """Resolve ``trio_tasks._module.Name`` (as type hints spell it) to the documented ``trio_tasks.Name``."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith("trio_tasks._"):
        return None
    name = target.rsplit(".", 1)[-1]
    if name not in trio_tasks.__all__:
        return None
    node["reftarget"] = f"trio_tasks.{name}"
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], node["reftarget"], node, contnode)


# Classes that users get from trio_tasks rather than build: their constructors are internal.
_NOT_BUILT_BY_USERS = {
    "trio_tasks.AsyncTaskHandle",
    "trio_tasks.TaskManager",
    "trio_tasks.TaskPortal",
    "trio_tasks.TaskEvents",
}


def _hide_internal_signatures(
    app: Sphinx, what: str, name: str, obj: object, options: object, signature: str | None, annotation: str | None
) -> tuple[str, str | None] | None:
    if what == "class" and name in _NOT_BUILT_BY_USERS:
        return "", annotation
    return None


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _on_missing_reference)
    app.connect("autodoc-process-signature", _hide_internal_signatures)
