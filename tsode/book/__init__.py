"""The paper's experiments, figures and the book runner (the engines never import this package).

* :mod:`tsode.book.experiments` — one function per section of a chapter, turning a mode
  (``"fast"`` / ``"full"``) into settings and returning the data of its figure and key numbers;
* :mod:`tsode.book.plotting` — the book's figure style and one ``fig_*`` function per figure;
* :mod:`tsode.book.runner` — ``python -m tsode.book run|build|list``: papermill execution,
  tidying and the Jupyter Book build.

Needs the ``book`` extra (matplotlib, papermill, jupyter-book); ``import tsode`` alone loads none
of them.
"""
