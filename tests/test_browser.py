"""The rendered book read as a reader would: headless Chromium at a 1280 px window (Playwright
driving Debian's /usr/bin/chromium; no browser download).

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
    assert len(pages) == len(book.chapters()) + 2
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
