"""``python -m protsae``: the same as the ``protsae`` console script."""

import sys

from protsae.cli import main

sys.exit(main())
