"""Deploy tooling as package code: deploys, previews, checks, drills and the Lambda package.

What ``scripts/`` did as loose scripts, typed and tested, one module per concern: parameter
files and templates (``parameters``), the deploy (``deploy``), ``preflight``, ``bootstrap``,
``preview``, ``drift``, the runbook parser and check (``runbooks``), the runbook drills
(``drill``), the point-in-time restore drill (``restore_drill``), the engine drills
(``exactly_once_drill``, ``kill_switch_drill``, on the rig of ``engine_rig``) and the Lambda
zip (``lambda_package``). Reached through ``kyperian deploy ...`` and ``kyperian ops ...``
(``ops/cli.py``); nothing in the product imports this package.
"""

from kyperian.ops.parameters import ParameterFile, load_parameter_file
from kyperian.ops.preflight import Finding, Preflight

__all__ = ["Finding", "ParameterFile", "Preflight", "load_parameter_file"]
