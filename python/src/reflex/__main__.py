"""`python -m reflex` is the `reflex` command."""

import sys

from .cli import main

sys.exit(main())
