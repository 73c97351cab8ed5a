"""`python -m mfae.cli ...` is the same as the `mfae` console script."""

import sys

from . import main

sys.exit(main())
