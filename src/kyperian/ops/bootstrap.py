"""Bootstrap: the prerequisites no template creates, made once per environment by an administrator.

The stacks read a hosted zone id and ACM certificate ARNs from SSM parameters
(``/kyperian/<env>/config/...``, named in the parameter files) so no account id sits in git.
``Bootstrap.run`` finds the hosted zone, requests each certificate with DNS validation in the
region that uses it (us-east-1 for CloudFront), writes the validation records into the zone, and
puts the SSM parameters. Re-running it changes nothing that is already right: an existing
certificate for the same names is reused, records are upserted, parameters overwritten with the
same value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from kyperian.ops.parameters import ParameterFile, ssm_references
from kyperian.ops.preflight import ClientFactory

#: The domain-name parameters each certificate must cover, by the stack that uses it.
CERTIFICATE_NAMES: Final = {
    "api": ("OriginDomainName", "RegionalDomainName"),
    "compute": ("EngineDomainName",),
    "edge": ("PublicDomainName",),
}
REUSABLE: Final = {"ISSUED", "PENDING_VALIDATION"}


class BootstrapError(Exception):
    """A prerequisite that only a person can provide (the hosted zone, a domain name)."""


@dataclass
class Bootstrap:
    """Create what the parameter files (the primary one, and the DR one if any) refer to.

    Parameters
    ----------
    files:
        The environment's parameter files, each with the region it deploys to.
    zone:
        The public hosted zone's domain, e.g. ``kyperian.com`` (it must exist: delegating a
        domain is a registrar's business).
    clients:
        Builds boto3 clients per service and region.
    """

    files: list[tuple[ParameterFile, str]]
    zone: str
    clients: ClientFactory
    actions: list[str] = field(default_factory=list)

    def run(self) -> list[str]:
        """Everything done (or found already done), one line each.

        Raises
        ------
        BootstrapError
            When the hosted zone does not exist or a certificate has no domain name.
        """
        self.actions = []
        zone_id = self.hosted_zone_id()
        for file, region in self.files:
            for reference in ssm_references(file, region):
                if reference.key.endswith("HostedZoneId"):
                    self._put(reference.name, reference.region, zone_id)
                elif reference.key.endswith("CertificateArn"):
                    names = self._certificate_names(file, reference.stack)
                    arn = self.certificate(names, reference.region, zone_id)
                    self._put(reference.name, reference.region, arn)
        return self.actions

    def hosted_zone_id(self) -> str:
        route53 = self.clients("route53", "us-east-1")
        wanted = self.zone.rstrip(".") + "."
        zones = route53.list_hosted_zones_by_name(DNSName=wanted)["HostedZones"]
        public = [
            z for z in zones if z["Name"] == wanted and not z.get("Config", {}).get("PrivateZone")
        ]
        if not public:
            raise BootstrapError(
                f"no public hosted zone {wanted}: create it (aws route53 create-hosted-zone) and "
                "delegate the domain to its name servers, then run bootstrap again"
            )
        zone_id = str(public[0]["Id"]).rsplit("/", 1)[-1]
        self.actions.append(f"hosted zone {wanted} is {zone_id}")
        return zone_id

    def certificate(self, names: list[str], region: str, zone_id: str) -> str:
        """The ARN of a certificate for ``names`` in ``region``, requested if none exists."""
        acm = self.clients("acm", region)
        arn = self._existing_certificate(acm, names)
        if arn:
            self.actions.append(f"certificate for {', '.join(names)} in {region} exists: {arn}")
        else:
            arn = acm.request_certificate(
                DomainName=names[0],
                SubjectAlternativeNames=names,
                ValidationMethod="DNS",
                IdempotencyToken=_token(names),
            )["CertificateArn"]
            self.actions.append(f"requested a certificate for {', '.join(names)} in {region}")
        self._validation_records(acm, arn, zone_id)
        return str(arn)

    def _existing_certificate(self, acm: Any, names: list[str]) -> str | None:
        for page in acm.get_paginator("list_certificates").paginate(
            CertificateStatuses=sorted(REUSABLE)
        ):
            for summary in page["CertificateSummaryList"]:
                if summary["DomainName"] != names[0]:
                    continue
                details = acm.describe_certificate(CertificateArn=summary["CertificateArn"])
                covered = set(details["Certificate"].get("SubjectAlternativeNames", []))
                if covered == set(names):
                    return str(summary["CertificateArn"])
        return None

    def _validation_records(self, acm: Any, arn: str, zone_id: str) -> None:
        options = acm.describe_certificate(CertificateArn=arn)["Certificate"].get(
            "DomainValidationOptions", []
        )
        # Upserted even once validated: ACM renews a DNS-validated certificate only while the
        # CNAME stays in place.
        records = {
            (o["ResourceRecord"]["Name"], o["ResourceRecord"]["Value"])
            for o in options
            if "ResourceRecord" in o
        }
        if not records:
            return
        self.clients("route53", "us-east-1").change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Comment": "ACM DNS validation (kyperian deploy bootstrap)",
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": "CNAME",
                            "TTL": 300,
                            "ResourceRecords": [{"Value": value}],
                        },
                    }
                    for name, value in sorted(records)
                ],
            },
        )
        self.actions.append(f"validation records for {arn}: {len(records)} upserted")

    def _certificate_names(self, file: ParameterFile, stack: str) -> list[str]:
        names = [
            file.stacks[stack][key].lower()
            for key in CERTIFICATE_NAMES.get(stack, ())
            if file.stacks.get(stack, {}).get(key)
        ]
        if not names:
            raise BootstrapError(
                f"{file.name}.json: {stack} has no domain name for its certificate"
            )
        return list(dict.fromkeys(names))

    def _put(self, name: str, region: str, value: str) -> None:
        ssm = self.clients("ssm", region)
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        self.actions.append(f"ssm {name} ({region}) = {value}")


def _token(names: list[str]) -> str:
    """ACM's idempotency token: alphanumerics, at most 32 characters, stable for the names."""
    return hashlib.sha256(",".join(names).encode()).hexdigest()[:32]
