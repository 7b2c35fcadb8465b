"""Build, deploy and lint tooling run by make and the GitHub workflows (not shipped)."""
