"""``python -m wattlm`` is the same as the ``wattlm`` command."""

import sys

from wattlm.cli.main import main

sys.exit(main())
