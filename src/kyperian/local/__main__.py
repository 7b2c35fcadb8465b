"""``python -m kyperian.local`` is ``kyperian up``."""

from kyperian.cli import main

raise SystemExit(main(["up"]))
