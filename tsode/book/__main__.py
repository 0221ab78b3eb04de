"""``python -m tsode.book run|build|list`` (see :mod:`tsode.book.runner`)."""

import sys

from .runner import main

sys.exit(main())
