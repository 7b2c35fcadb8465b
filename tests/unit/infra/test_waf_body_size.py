"""The edge WAF lets through every body the webhook accepts and answers 413 beyond (issue 16).

AWS's common rule set blocks bodies over 8 KB with a 403 (its SizeRestrictions_BODY rule),
while the webhook takes up to ``Settings.max_body_bytes`` (16 KiB) and answers 413 above.
The web ACL counts that managed rule and enforces the webhook's own limit with the webhook's
status, read here from the code's setting so the two cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kyperian.settings import Settings
from tests.unit.infra.cfn import load_template, lookup


def rules(parameter_file: str) -> dict[str, dict[str, Any]]:
    body = load_template("edge").rendered(parameter_file)
    return {rule["Name"]: rule for rule in lookup(body, "Resources.WebAcl.Properties.Rules")}


@pytest.mark.parametrize("parameter_file", ["staging", "production"])
def test_the_edge_blocks_exactly_the_bodies_the_webhook_refuses(parameter_file: str) -> None:
    # GIVEN the webhook's body limit and the edge web ACL
    limit = Settings().max_body_bytes
    rule = rules(parameter_file)["body-over-16kib"]
    # THEN the size rule matches bodies over the limit, and longer-than-inspected ones too
    size = rule["Statement"]["SizeConstraintStatement"]
    assert (size["ComparisonOperator"], size["Size"]) == ("GT", limit)
    assert size["FieldToMatch"] == {"Body": {"OversizeHandling": "MATCH"}}
    # AND it answers like the webhook: 413 with the webhook's error code
    response = rule["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 413
    acl = load_template("edge").rendered(parameter_file)["Resources"]["WebAcl"]["Properties"]
    body = acl["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert json.loads(body["Content"])["error"] == "payload_too_large"
    assert str(limit) in json.loads(body["Content"])["message"]


@pytest.mark.parametrize("parameter_file", ["staging", "production"])
def test_the_common_rule_set_no_longer_blocks_bodies_over_8_kb(parameter_file: str) -> None:
    # GIVEN the managed common rule set of the edge web ACL
    statement = rules(parameter_file)["aws-common-rule-set"]["Statement"]
    overrides = statement["ManagedRuleGroupStatement"]["RuleActionOverrides"]
    # THEN its body size rule only counts
    assert {o["Name"]: o["ActionToUse"] for o in overrides} == {
        "SizeRestrictions_BODY": {"Count": {}}
    }


def test_the_size_rule_runs_before_the_managed_groups() -> None:
    by_name = rules("production")
    assert (
        by_name["body-over-16kib"]["Priority"]
        < by_name["aws-common-rule-set"]["Priority"]
        < by_name["aws-known-bad-inputs"]["Priority"]
    )
