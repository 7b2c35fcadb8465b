"""AWS adapters, reached only through boto3 with a configurable endpoint (moto locally)."""
