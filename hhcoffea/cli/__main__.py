"""``python -m hhcoffea.cli``."""

import sys

from . import main

sys.exit(main())
