"""Preflight: what an environment's deploy needs, checked against the account before anything runs.

A change set that fails half-way (a missing certificate, a Lambda concurrency quota too small for
three functions at 100 reserved each in two environments, a parameter file with a gap, the wrong
account in the shell) leaves stacks to roll back and costs an hour. ``Preflight.run`` reads
the account and the parameter file and reports every such problem at once, before the first
change set. It only reads: it never creates or changes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.ops.parameters import (
    TEMPLATES,
    ParameterFile,
    SsmReference,
    alarm_subscriber_problem,
    missing_and_unknown,
    notice_subscriber_problem,
    reserved_concurrency,
    ssm_references,
)

#: Lambda keeps this much of the account's concurrency unreserved, always.
LAMBDA_MIN_UNRESERVED: Final = 100

ClientFactory = Callable[[str, str], Any]
"""(service, region) -> a boto3 client for that service in that region."""


@dataclass(frozen=True)
class Finding:
    """One check: passed or not, and what was found (or what to do)."""

    check: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.check}: {self.detail}"


@dataclass
class Preflight:
    """Every check of one parameter file against one account and region.

    Parameters
    ----------
    file:
        The parameter file that will be deployed.
    region:
        The region the deploy runs in (stacks with a fixed region use theirs).
    clients:
        Builds boto3 clients; ``kyperian.ops.cli`` passes one on the configurable endpoint.
    expected_account:
        The account the deploy must run in; None accepts whichever the credentials name.
    primary:
        For a DR file, the primary file beside it (``kyperian.ops.parameters.primary_of``):
        both must e-mail the trader's notices to the same address.
    """

    file: ParameterFile
    region: str
    clients: ClientFactory
    expected_account: str | None = None
    primary: ParameterFile | None = None
    templates: Path = TEMPLATES
    findings: list[Finding] = field(default_factory=list)

    def run(self) -> list[Finding]:
        """All checks, in order; each AWS failure becomes a failed finding, never an exception."""
        self.findings = []
        for check in (
            self.check_identity,
            self.check_region,
            self.check_parameters,
            self.check_alarm_subscriber,
            self.check_notice_subscriber,
            self.check_prerequisites,
            self.check_lambda_concurrency,
        ):
            try:
                check()
            except (ClientError, BotoCoreError) as exc:
                self._add(check.__name__.removeprefix("check_"), False, f"AWS call failed: {exc}")
        return self.findings

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    def _add(self, check: str, ok: bool, detail: str) -> None:
        self.findings.append(Finding(check, ok, detail))

    # -- the checks --

    def check_identity(self) -> None:
        identity = self.clients("sts", self.region).get_caller_identity()
        account, arn = identity["Account"], identity["Arn"]
        if self.expected_account and account != self.expected_account:
            self._add(
                "account",
                False,
                f"credentials are for {account} ({arn}), the deploy expects "
                f"{self.expected_account}: switch profile or role",
            )
        else:
            self._add("account", True, f"{account} as {arn}")

    def check_region(self) -> None:
        wanted = self.file.region()
        if wanted and wanted != self.region:
            self._add(
                "region",
                False,
                f"{self.file.name}.json deploys to {wanted}, not {self.region} "
                "(pass --region, or the -dr file for the DR region)",
            )
        else:
            self._add("region", True, self.region)

    def check_parameters(self) -> None:
        problems = missing_and_unknown(self.file, self.templates)
        detail = "; ".join(problems) if problems else f"{len(self.file.stacks)} stacks complete"
        self._add("parameters", not problems, detail)

    def check_alarm_subscriber(self) -> None:
        problem = alarm_subscriber_problem(self.file)
        if problem is None:
            self._add("alarm subscriber", True, str(self.file.value("monitoring", "AlertEmail")))
        elif self.file.environment == "production":
            self._add("alarm subscriber", False, problem)
        else:
            self._add("alarm subscriber", True, f"warning: {problem}")

    def check_notice_subscriber(self) -> None:
        problem = notice_subscriber_problem(self.file, self.primary)
        if problem is None:
            address = self.file.value("monitoring", "NoticeEmail") or "none (no e-mail notices)"
            self._add("notice subscriber", True, address)
        elif self.file.environment == "production":
            self._add("notice subscriber", False, problem)
        else:
            self._add("notice subscriber", True, f"warning: {problem}")

    def check_prerequisites(self) -> None:
        seen: set[tuple[str, str]] = set()
        for reference in ssm_references(self.file, self.region, self.templates):
            if (reference.name, reference.region) in seen:
                continue
            seen.add((reference.name, reference.region))
            self._check_reference(reference)

    def _check_reference(self, reference: SsmReference) -> None:
        label = f"{reference.name} ({reference.region})"
        ssm = self.clients("ssm", reference.region)
        try:
            value = ssm.get_parameter(Name=reference.name)["Parameter"]["Value"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise
            self._add(
                "prerequisite",
                False,
                f"{label} is missing (read by {reference.stack}.{reference.key}): "
                "run `kyperian deploy bootstrap` or create it",
            )
            return
        if reference.key.endswith("HostedZoneId"):
            self._check_zone(label, value)
        elif reference.key.endswith("CertificateArn"):
            self._check_certificate(label, value, reference.region)
        else:
            self._add("prerequisite", True, f"{label} = {value}")

    def _check_zone(self, label: str, zone_id: str) -> None:
        try:
            zone = self.clients("route53", self.region).get_hosted_zone(Id=zone_id)["HostedZone"]
        except ClientError as exc:
            self._add("prerequisite", False, f"{label}: hosted zone {zone_id} not found ({exc})")
            return
        self._add("prerequisite", True, f"{label}: hosted zone {zone['Name']}")

    def _check_certificate(self, label: str, arn: str, region: str) -> None:
        try:
            certificate = self.clients("acm", region).describe_certificate(CertificateArn=arn)
        except ClientError as exc:
            self._add("prerequisite", False, f"{label}: certificate {arn} not found ({exc})")
            return
        status = certificate["Certificate"]["Status"]
        names = ", ".join(certificate["Certificate"].get("SubjectAlternativeNames", []))
        detail = f"{label}: certificate {status} for {names}"
        if status != "ISSUED":
            detail += " (DNS validation pending: wait, or check the CNAME records)"
        self._add("prerequisite", status == "ISSUED", detail)

    def check_lambda_concurrency(self) -> None:
        needed = reserved_concurrency(self.file, self.templates)
        if needed == 0:
            self._add("lambda concurrency", True, "no reserved concurrency in these stacks")
            return
        client = self.clients("lambda", self.region)
        limits = client.get_account_settings()["AccountLimit"]
        limit, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
        prefix = f"kyperian-{self.file.environment}-"
        ours = sum(
            int(
                client.get_function_concurrency(FunctionName=name).get(
                    "ReservedConcurrentExecutions", 0
                )
            )
            for name in _function_names(client, prefix)
        )
        after = unreserved + ours - needed
        detail = (
            f"these stacks reserve {needed} (api.ReservedConcurrency per function); account "
            f"limit {limit}, unreserved now {unreserved}, after the deploy {after} "
            f"(Lambda keeps {LAMBDA_MIN_UNRESERVED})"
        )
        if after < LAMBDA_MIN_UNRESERVED:
            detail += (
                ": ask for a higher 'Concurrent executions' quota (Service Quotas L-B99A9384) "
                "or lower api.ReservedConcurrency in the parameter file"
            )
        self._add("lambda concurrency", after >= LAMBDA_MIN_UNRESERVED, detail)


def _function_names(client: Any, prefix: str) -> Iterable[str]:
    for page in client.get_paginator("list_functions").paginate():
        for function in page.get("Functions", []):
            if function["FunctionName"].startswith(prefix):
                yield function["FunctionName"]


def report(findings: Iterable[Finding]) -> str:
    """The findings, one line each, failed ones marked FAIL."""
    return "\n".join(finding.line() for finding in findings)
