"""Command line: ``tsode sweep ...`` (see :mod:`tsode.sweeps.cli`) and ``tsode book
run|build|list ...`` (see :mod:`tsode.book`)."""

from __future__ import annotations

import sys

USAGE = """usage: tsode <command> ...

commands:
  sweep SPEC.toml -o OUT [--scheduler ADDRESS | --workers N] [--resume] [--overwrite]
        [--max-memory GB]
  sweep --dry-run SPEC.toml                 list tasks, estimate run-steps and memory
  book run [--mode fast|full] [-p NAME VALUE] [CHAPTER ...]   execute chapter notebooks
  book build                                                  build the HTML book
  book list                                                   list the chapters
  book long [--dry-run | --status] [NAME ...]                 compute the cached long runs
"""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if argv[0] == "sweep":
        from .sweeps.cli import main as sweep_main

        return sweep_main(argv[1:])
    if argv[0] == "book":
        from .book.runner import main as book_main

        return book_main(argv[1:])
    print(f"tsode: unknown command {argv[0]!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
