"""`python -m reconciler` runs the same CLI as the `bhyve-reconciler` script."""

import sys

from reconciler.cli import main

sys.exit(main())
