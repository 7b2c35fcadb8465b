"""Thin glue: ``python scripts/deploy.py ARGS`` is ``kyperian deploy apply ARGS``.

The deploy code lives in ``src/kyperian/ops/deploy.py`` (typed and tested with the package);
this file keeps the command the workflow, the runbooks and people already use.
"""

from __future__ import annotations

import sys

from kyperian.ops.deploy import main

if __name__ == "__main__":
    sys.exit(main())
