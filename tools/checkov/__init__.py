"""checkov loads custom policies only from a package directory."""
