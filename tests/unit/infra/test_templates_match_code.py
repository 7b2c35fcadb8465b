"""The templates and the code agree on names: a rename on one side fails here.

The code derives resource names from ``KYPERIAN_ENVIRONMENT`` when a variable is unset,
and the templates set variables that ``Settings`` must know; both directions are checked.
"""

from __future__ import annotations

from typing import Any

import pytest

from kyperian.settings import Settings
from tests.unit.infra.cfn import load_template, lookup

ENVIRONMENTS = ["staging", "production"]


def _environment_variables(rendered: dict[str, Any]) -> dict[str, Any]:
    """Every KYPERIAN_* variable a Lambda function or the ECS container gets."""
    found: dict[str, Any] = {}
    for resource in rendered["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function":
            found.update(properties["Environment"]["Variables"])
        if resource["Type"] == "AWS::ECS::TaskDefinition":
            for container in properties["ContainerDefinitions"]:
                found.update({e["Name"]: e["Value"] for e in container.get("Environment", [])})
                found.update({s["Name"]: s["ValueFrom"] for s in container.get("Secrets", [])})
    return {k: v for k, v in found.items() if k.startswith("KYPERIAN_")}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_code_defaults_name_what_the_templates_create(environment: str) -> None:
    # GIVEN the code's settings for an environment with no name variables set
    settings = Settings(environment=environment)
    data = load_template("data").rendered(environment)
    messaging = load_template("messaging").rendered(environment)
    config = load_template("config").rendered(environment)
    # THEN every default name is the one the templates give the resource
    assert settings.signals_table == lookup(data, "Resources.SignalsTable.Properties.TableName")
    assert settings.decisions_table == lookup(data, "Resources.DecisionsTable.Properties.TableName")
    assert settings.ledger_table == lookup(data, "Resources.LedgerTable.Properties.TableName")
    assert settings.event_bus_name == lookup(messaging, "Resources.EventBus.Properties.Name")
    secret_names = {
        r["Properties"]["Name"]
        for r in config["Resources"].values()
        if r["Type"] == "AWS::SecretsManager::Secret"
    }
    assert settings.api_key_secret_id in secret_names
    assert settings.engine_token_secret_id in secret_names


@pytest.mark.parametrize("stack", ["api", "compute"])
def test_every_variable_the_templates_set_is_a_setting(stack: str) -> None:
    # GIVEN the variables a deployed function or container receives
    variables = _environment_variables(load_template(stack).rendered("production"))
    assert variables
    # THEN each one fills a field of Settings (an unknown one would be silently ignored)
    fields = {f"KYPERIAN_{name.upper()}" for name in Settings.model_fields}
    assert set(variables) - fields == set()
