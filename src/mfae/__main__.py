"""`python -m mfae ...` is the same as the `mfae` console script."""

import sys

from .cli import main

sys.exit(main())
