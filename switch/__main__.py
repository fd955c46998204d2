"""`python -m switch` is the same as the `switch` command."""

import sys

from switch.cli import main

sys.exit(main())
