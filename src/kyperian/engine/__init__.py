"""The engine service (ECS Fargate): SQS worker, fusion, decisions, and the HTTP API.

It never imports ``kyperian.ingest``: the Lambda package and the service share only the
domain, the settings and the adapters.
"""
