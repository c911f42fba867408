"""`python -m gateway` is the `coe` command."""

import sys

from gateway.cli import main

sys.exit(main())
