"""``python -m tinygrad_cnn`` is the ``tinygrad-cnn`` command line."""

import sys

from .cli import main

sys.exit(main())
