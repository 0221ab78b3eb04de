"""The rendered book read as a reader would: headless Chromium at a 1280 px window (Playwright
driving Debian's /usr/bin/chromium; no browser download).

Issue 23: the intro is at most 6000 px tall at 1280 px; no page logs a console error or scrolls
sideways at a 390 px phone width; every bibliography entry links doi.org or arxiv.org (except
the entries of ``NO_IDENTIFIER``, each with its reason); author-year labels are unambiguous.

Every page of the built book (committed notebooks, ``python -m tsode.book build --committed``)
must have: no block of the main content (display maths, code, cell outputs, tables) wider than
itself, no visible element beyond the main column, every image loaded, every figure's smallest
text at >= 8 CSS px (the ``tsode:min-font-px`` PNG chunk written by ``plotting.show`` times the
displayed/natural width), no raw TeX. ``test_checks_catch_a_bad_page`` shows each check fails.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tsode.book import runner as book

CHROMIUM = "/usr/bin/chromium"
WINDOW = {"width": 1280, "height": 900}
MIN_CSS_PX = 8.0

#: Runs in the page: overflowing blocks, elements beyond the column, images, text for raw TeX.
_PROBE = r"""() => {
  const art = document.querySelector('article.bd-article') || document.querySelector('main');
  const col = art.getBoundingClientRect();
  const name = (e) => e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined
      ? '.' + String(e.className).trim().split(/\s+/).slice(0, 2).join('.') : '') +
      ' "' + (e.textContent || '').trim().slice(0, 40) + '"';
  const out = {overflow: [], beyond: [], images: [], text: ''};
  const blocks = art.querySelectorAll(
      'mjx-container[display="true"], div.math, pre, div.highlight, div.cell_output, div.output, table');
  for (const b of blocks) {
    if (b.scrollWidth > b.clientWidth + 2) out.overflow.push(`${name(b)} ${b.scrollWidth} > ${b.clientWidth}`);
  }
  for (const e of art.querySelectorAll('*')) {
    if (e.closest('mjx-assistive-mml')) continue;
    const st = getComputedStyle(e);
    if (st.visibility === 'hidden' || st.display === 'none') continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (r.right > col.right + 2) out.beyond.push(`${name(e)} right ${Math.round(r.right)} > ${Math.round(col.right)}`);
  }
  for (const img of art.querySelectorAll('img')) {
    out.images.push({src: img.src, ok: img.complete && img.naturalWidth > 0,
                     client: img.clientWidth, natural: img.naturalWidth});
  }
  const clone = art.cloneNode(true);
  for (const e of clone.querySelectorAll('pre, code, script, style, mjx-container, textarea')) e.remove();
  out.text = clone.textContent;
  out.maths = art.querySelectorAll('mjx-container').length;
  return out;
}"""


def png_text(path: Path) -> dict:
    """The tEXt chunks of a PNG file as {keyword: text} (the first of a repeated keyword)."""
    data, out, i = path.read_bytes(), {}, 8
    while i + 8 <= len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        if data[i + 4:i + 8] == b"tEXt":
            key, _, val = data[i + 8:i + 8 + n].partition(b"\0")
            out.setdefault(key.decode("latin-1"), val.decode("latin-1"))
        i += 12 + n
    return out


def problems_of(page, url: str) -> list[str]:
    """Everything wrong with the page at ``url`` (a file:// URL)."""
    page.goto(url, wait_until="load")
    page.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || null")
    page.wait_for_timeout(300)
    res = page.evaluate(_PROBE)
    out = [f"overflowing block: {o}" for o in res["overflow"]]
    out += [f"beyond the column: {o}" for o in res["beyond"][:5]]
    for img in res["images"]:
        if not img["ok"]:
            out.append(f"missing image {img['src']}")
            continue
        if not img["src"].startswith("file:") or not img["src"].endswith(".png"):
            continue
        meta = png_text(Path(unquote(urlparse(img["src"]).path)))
        if "tsode:min-font-px" not in meta:
            out.append(f"figure without font metadata (use plotting.show): {img['src']}")
            continue
        css = float(meta["tsode:min-font-px"]) * img["client"] / img["natural"]
        if css < MIN_CSS_PX:
            out.append(f"figure text {css:.1f} CSS px < {MIN_CSS_PX}: {img['src']}")
    text = res["text"]
    out += [f"raw TeX {raw!r}" for raw in ("$$", "\\(", "\\[", "\\begin{") if raw in text]
    if re.search(r"\$[^$\s][^$]{0,200}\$", text):
        out.append("inline $...$ left in the page")
    return out


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install -y chromium (.ci/run)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = b.new_page(viewport=WINDOW)
        yield page
        b.close()


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    assert book.build(str(out), committed=True) == 0, "the book does not build"
    return out / "_build" / "html"


def test_every_page_reads_well_at_1280px(browser, html):
    pages = sorted((html / "book").glob("*.html"))
    assert len(pages) == len(book.chapters()) + 3, "intro, chapters, references, how to cite"
    problems = [f"{p.name}: {msg}" for p in pages for msg in problems_of(browser, p.as_uri())]
    assert not problems, "\n".join(problems)


def test_chapters_have_typeset_maths_and_figures(browser, html):
    for nb in book.chapters():
        browser.goto((html / "book" / f"{nb.stem}.html").as_uri(), wait_until="load")
        browser.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || null")
        res = browser.evaluate(_PROBE)
        assert res["maths"] > 0, f"{nb.stem}: no typeset maths (mjx-container)"
        assert res["images"], f"{nb.stem}: no figures"


def test_checks_catch_a_bad_page(browser, html, tmp_path):
    """A chapter page with injected overflow, a wide element, a missing image, a figure with
    6 px text and raw TeX: each is reported."""
    src = html / "book" / "01_odes.html"
    figure = next((html / "_images").glob("*.png"), None) or next(html.rglob("*.png"))
    small = tmp_path / "small.png"
    data = figure.read_bytes()
    chunk = b"tsode:min-font-px\x006.00"
    import zlib

    small.write_bytes(data[:33] + struct.pack(">I", len(chunk)) + b"tEXt" + chunk
                      + struct.pack(">I", zlib.crc32(b"tEXt" + chunk)) + data[33:])
    bad = ("<pre style='white-space:pre'>" + "x" * 400 + "</pre>"
           "<div style='width:1500px;height:10px'>wide</div>"
           "<img src='does-not-exist.png'>"
           f"<img src='{small.as_uri()}'>"
           "<p class='tex2jax_ignore mathjax_ignore'>$$x^2$$ untypeset</p>")
    text = src.read_text()
    i = text.index("<section")
    page = src.parent / "_bad_page.html"
    page.write_text(text[:i] + bad + text[i:])
    problems = "\n".join(problems_of(browser, page.as_uri()))
    page.unlink()
    for expected in ("overflowing block: pre", "beyond the column", "missing image",
                     "raw TeX '$$'"):
        assert expected in problems, f"{expected!r} not reported:\n{problems}"
    assert re.search(r"figure text [0-6]\.\d CSS px < 8.0: \S*small.png", problems), problems


# ------------------------------------------------------------------------------------------
# issue 23: the reader's book
# ------------------------------------------------------------------------------------------
INTRO_MAX_PX = 6000
PHONE = {"width": 390, "height": 844}
#: Bibliography entries without a DOI or arXiv link, and why (references.bib says the same).
NO_IDENTIFIER = {
    "cho2009kernel": "NeurIPS 2009 proceedings have no DOI and the paper no arXiv version",
    "riegler1995": "its DOI could not be confirmed against the publisher's record",
    "biehl1996transient": "its DOI could not be confirmed against the publisher's record",
    "goldt2019pyscm": "a Mathematica notebook in a GitHub repository, linked by URL",
}


def _bib_titles() -> dict:
    """{key: title} of book/references.bib (pybtex, as sphinxcontrib-bibtex reads it)."""
    from pybtex.database import parse_file

    bib = parse_file(str(book.BOOK / "references.bib"))
    return {k: " ".join(e.fields["title"].replace("{", "").replace("}", "").split())
            for k, e in bib.entries.items()}


def _load(page, url):
    page.goto(url, wait_until="load")
    page.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || null")
    page.wait_for_timeout(200)


def test_intro_is_at_most_6000px_tall_at_1280px(browser, html):
    _load(browser, (html / "book" / "intro.html").as_uri())
    height = browser.evaluate("() => document.documentElement.scrollHeight")
    assert height <= INTRO_MAX_PX, f"intro is {height} px tall"
    text = browser.evaluate("() => document.querySelector('article').innerText")
    # one table per chapter, each saying how its notebook was executed
    assert text.count("full mode (committed)") == len(book.chapters())
    assert browser.evaluate("() => document.querySelectorAll('table.tsode-overview').length") \
        == len(book.chapters())
    assert "eps_g" not in text and "alpha=" not in text, "record text is rendered as maths"


def bibliography_problems(entries: list[dict], titles: dict) -> list[str]:
    """Entries ({text, links}) without a doi.org or arxiv.org link that are not in
    :data:`NO_IDENTIFIER`, entries not in references.bib, and exceptions that have a link."""
    out = []
    for e in entries:
        text = " ".join(e["text"].split())
        key = next((k for k, t in titles.items() if t.lower() in text.lower()), None)
        if key is None:
            out.append(f"not in references.bib: {text[:80]}")
            continue
        linked = any(h.startswith(("https://doi.org/", "https://arxiv.org/abs/"))
                     for h in e["links"])
        if not linked and key not in NO_IDENTIFIER:
            out.append(f"no DOI or arXiv link: {key}")
        if linked and key in NO_IDENTIFIER:
            out.append(f"{key} has an identifier now: remove it from NO_IDENTIFIER")
    return out


def test_every_bibliography_entry_links_doi_or_arxiv(browser, html):
    titles = _bib_titles()
    _load(browser, (html / "book" / "references.html").as_uri())
    entries = browser.evaluate("""() => [...document.querySelectorAll('[role=doc-biblioentry]')]
        .map(e => ({text: e.innerText, links: [...e.querySelectorAll('a')].map(a => a.href)}))""")
    assert len(entries) >= 8
    problems = bibliography_problems(entries, titles)
    assert not problems, "\n".join(problems)
    # the check fails where it should
    bad = [{"text": "D. Saad. On-line learning in soft committee machines. 1995.", "links": []},
           {"text": "Y. Cho. Kernel methods for deep learning.", "links": ["https://doi.org/x"]},
           {"text": "Nobody. Not a cited work.", "links": []}]
    assert bibliography_problems(bad, titles) == [
        "no DOI or arXiv link: saad1995pre",
        "cho2009kernel has an identifier now: remove it from NO_IDENTIFIER",
        "not in references.bib: Nobody. Not a cited work."]


def test_author_year_labels_are_unambiguous(browser, html):
    """No citation label names two different works (Saad & Solla 1995a and 1995b)."""
    labels: dict = {}
    for p in sorted((html / "book").glob("*.html")):
        _load(browser, p.as_uri())
        for text, href in browser.evaluate("""() => [...document.querySelectorAll(
                'span.citation a, a.reference.internal')].filter(a => a.href.includes('references.html#'))
                .map(a => [a.innerText.trim(), a.href.split('#')[1]])"""):
            labels.setdefault(text, set()).add(href)
    ambiguous = {t: h for t, h in labels.items() if len(h) > 1}
    assert not ambiguous, ambiguous
    assert {"Saad and Solla, 1995a", "Saad and Solla, 1995b"} <= set(labels)


def reader_problems(page, url: str, width: int, errors: list) -> list[str]:
    """Console errors (collected in ``errors`` by the page's listeners) and sideways scrolling
    of the page at ``url`` in a window ``width`` px wide."""
    errors.clear()
    _load(page, url)
    name = url.rsplit("/", 1)[-1]
    out = [f"{name} at {width} px: console: {e}" for e in errors]
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    if scroll > width:
        out.append(f"{name} at {width} px scrolls sideways ({scroll} px)")
    return out


def test_no_console_errors_and_no_sideways_scrolling_on_a_phone(browser, html, tmp_path):
    problems = []
    for viewport in (WINDOW, PHONE):
        page = browser.context.browser.new_page(viewport=viewport)
        errors: list = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        for path in sorted((html / "book").glob("*.html")):
            problems += reader_problems(page, path.as_uri(), viewport["width"], errors)
        if viewport is PHONE:  # the checks fail where they should
            bad = tmp_path / "bad.html"
            bad.write_text("<html><body><div style='width:1000px'>wide</div>"
                           "<script>console.error('boom'); const a = 1; const a = 2;</script>"
                           "</body></html>")
            found = "\n".join(reader_problems(page, bad.as_uri(), PHONE["width"], errors))
            assert "scrolls sideways (1" in found and "console:" in found, found
        page.close()
    assert not problems, "\n".join(problems)


def test_no_button_points_at_a_placeholder_repository(html):
    """Without ``repository.url`` in _config.yml no repository, issue or edit button is shown."""
    import yaml

    staged = yaml.safe_load(book.staged_config((book.ROOT / "_config.yml").read_text()))
    buttons_off = not any(staged["html"].get(k) for k in book.REPOSITORY_BUTTONS)
    for path in sorted((html / "book").glob("*.html")):
        text = path.read_text()
        assert "github.com/tsode/tsode" not in text, path.name
        if buttons_off:
            for marker in ("source-repository-button", "source-issues-button",
                           "source-edit-button"):  # sphinx-book-theme's button labels
                assert marker not in text, f"{path.name}: {marker}"
