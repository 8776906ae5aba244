"""``python -m nntransfer`` is the ``nntransfer`` command."""

import sys

from nntransfer.cli.main import main

sys.exit(main())
