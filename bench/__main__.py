"""`python -m bench`: run the selected benchmark modes and write the report."""

import sys

from bench.cli import main

sys.exit(main())
