"""``python -m octostored.cli``: the ``octostore`` command."""

import sys

from octostored.cli import main

sys.exit(main())
