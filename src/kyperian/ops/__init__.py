"""Deploy tooling as package code: parameter files, preflight and bootstrap of one environment.

What ``scripts/`` did as loose scripts, typed and tested: read the templates and parameter files
the way CloudFormation will, check an account before any change set (``preflight``), and create
the prerequisites no template creates (``bootstrap``). Reached through ``kyperian deploy ...``;
nothing in the product imports this package.
"""

from kyperian.ops.parameters import ParameterFile, load_parameter_file
from kyperian.ops.preflight import Finding, Preflight

__all__ = ["Finding", "ParameterFile", "Preflight", "load_parameter_file"]
