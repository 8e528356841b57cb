"""``python -m hookline.cli``: the same as the ``hookline`` command."""

from hookline.cli import main

raise SystemExit(main())
