"""``python -m hookline``: the same as the ``hookline`` command (only ``-m`` runs this file, so
``import hookline`` stays as light as it was)."""

from hookline.cli import main

raise SystemExit(main())
