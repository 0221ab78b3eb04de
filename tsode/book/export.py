"""Figures leave the kernel: :func:`show` displays a figure as a PNG that carries its smallest
text height (``tsode:min-font-px``, read by the browser test) and a link to download its data as
CSV (:func:`figure_csv`, generic: whatever lines, error bars and matrices the figure draws).

Re-exported by :mod:`tsode.book.plotting` (notebooks call ``plotting.show(fig, name)``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCRIPT_SCALE", "min_font_px", "figure_csv", "show"]


#: Size of mathtext sub- and superscripts relative to their text (matplotlib's SHRINK_FACTOR).
SCRIPT_SCALE = 0.7


def _text_px(text, dpi: float) -> float:
    """The smallest glyph height of a Text artist in pixels (scripts of $...$ count at 0.7)."""
    size = text.get_fontsize() * dpi / 72.0
    s = text.get_text()
    maths = "".join(s.split("$")[1::2])
    return size * (SCRIPT_SCALE if ("_" in maths or "^" in maths) else 1.0)


def min_font_px(fig) -> float:
    """The smallest font size of the visible, non-empty texts of ``fig`` in image pixels,
    sub- and superscripts of mathtext included."""
    from matplotlib.text import Text

    fig.canvas.draw()
    return min(_text_px(t, fig.dpi) for t in fig.findobj(Text) if t.get_visible() and t.get_text())


def _panel_name(ax, i: int) -> str:
    return ax.get_title() or ax.get_ylabel() or f"panel {i + 1}"


def _line_rows(ax, panel: str) -> list[str]:
    """CSV rows ``panel,series,x,y,yerr`` of the lines and error bars of one axes."""
    from matplotlib.container import ErrorbarContainer

    errs = {}
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer) and c.lines[0] is not None and c.lines[2]:
            segs = c.lines[2][0].get_segments()
            errs[id(c.lines[0])] = (c.get_label(), [abs(sg[1][1] - sg[0][1]) / 2 for sg in segs])
    rows = []
    for j, line in enumerate(ax.get_lines()):
        name, err = errs.get(id(line), (line.get_label(), None))
        name = f"line {j + 1}" if not name or name.startswith("_") else name
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if line.get_transform() is not ax.transData:  # axhline/axvline: axes coordinates
            name += " (reference line)"
        for k, (a, b) in enumerate(zip(x, y)):
            e = "" if err is None or k >= len(err) else f"{err[k]:.6g}"
            rows.append(f'"{panel}","{name}",{a:.6g},{b:.6g},{e}')
    for im in ax.get_images():
        for (r, c), v in np.ndenumerate(np.asarray(im.get_array(), float)):
            rows.append(f'"{panel}","matrix row {r + 1}",{c + 1},{v:.6g},')
    return rows


def figure_csv(fig) -> str:
    """The data drawn in ``fig`` as CSV (panel, series, x, y, yerr): lines, error bars (half
    the bar) and matrices (x = 1-based column, series = 1-based row)."""
    rows = ["panel,series,x,y,yerr"]
    for i, ax in enumerate(fig.axes):
        rows += _line_rows(ax, _panel_name(ax, i).replace('"', "'"))
    return "\n".join(rows) + "\n"


def _png_with_font_chunk(fig) -> bytes:
    """``fig`` as PNG (no Software chunk) with a ``tsode:min-font-px`` tEXt chunk."""
    import io

    buf = io.BytesIO()
    px = min_font_px(fig)
    fig.savefig(buf, format="png", dpi=fig.dpi,
                metadata={"Software": None, "tsode:min-font-px": f"{px:.2f}"})
    return buf.getvalue()


def show(fig, name: str) -> None:
    """Display ``fig`` (PNG with font metadata) and a link to its data as ``<name>.csv``; close it.

    The link embeds the CSV (a data: URI), so it works in the committed notebooks and the HTML
    alike without files beside them.
    """
    import base64

    from IPython.display import HTML, Image, display

    import matplotlib.pyplot as plt

    png, csv = _png_with_font_chunk(fig), figure_csv(fig)
    plt.close(fig)
    display(Image(data=png))
    href = "data:text/csv;base64," + base64.b64encode(csv.encode()).decode("ascii")
    display(HTML(f'<p class="tsode-data"><a download="{name}.csv" href="{href}">'
                 f"Download the data of this figure ({name}.csv, {len(csv) // 1024 + 1} kB)</a></p>"))
