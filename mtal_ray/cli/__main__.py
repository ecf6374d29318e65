"""``python -m mtal_ray.cli ...``: the ``mtal-ray`` command without the console script."""

from __future__ import annotations

import sys

from mtal_ray.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
