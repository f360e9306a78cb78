"""`python -m churnml ...`: the same as the `churnml` command."""

import sys

from churnml.cli import main

sys.exit(main())
