"""``python -m babel``: the command line (see :mod:`babel.cli`)."""

from babel.cli import main

raise SystemExit(main())
