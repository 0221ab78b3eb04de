"""A Sphinx extension for the book's HTML (listed under ``sphinx: extra_extensions`` in
_config.yml): no console errors on any page.

* sphinx-thebe 0.3.1 registers its configuration script (``const THEBE_JS_URL = ...``) twice
  under Jupyter Book 1, so every page logged "Identifier 'THEBE_JS_URL' has already been
  declared": :func:`dedupe_scripts` keeps the first of identical scripts on each page.
* pydata-sphinx-theme logs "Got invalid theme mode" when neither the reader nor the book chose a
  light/dark mode (sphinx-book-theme leaves ``default_mode`` empty and does not accept the
  option): :func:`default_mode` gives each page ``"auto"``.
"""

from __future__ import annotations

__all__ = ["dedupe_scripts", "default_mode", "setup"]


def _key(script) -> tuple:
    """What a script tag renders: its file and attributes (inline body included), not its
    priority, and no difference between the None and "" file names of inline scripts (the
    repeated registration carries the other one)."""
    attributes = getattr(script, "attributes", None) or {}
    filename = getattr(script, "filename", script) or ""  # an inline script: None or ""
    return str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()
                                       if k != "priority"))


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated identical entries (same file, same inline body) from the page's scripts."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def default_mode(app, pagename, templatename, context, doctree) -> None:
    """The page's ``default_mode`` (read by the theme's layout) is ``"auto"`` when unset."""
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app):
    app.connect("html-page-context", default_mode, priority=900)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
