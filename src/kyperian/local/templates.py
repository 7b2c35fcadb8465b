"""The CloudFormation templates, read and translated for the emulator (moto).

The local stack creates its tables, bus, rule and queues by deploying the real
``cloudformation/data.yaml`` and ``messaging.yaml`` into moto, so the names and shapes
cannot drift from what AWS runs. Two translations make data.yaml deployable there: moto's
CloudFormation has no ``AWS::DynamoDB::GlobalTable`` (each global table becomes the
``AWS::DynamoDB::Table`` of its replica in the deploying region: same name, keys, GSI,
billing, encryption, stream, PITR) and no ElastiCache (its resources, and what reads
their attributes, are left out: the local stack runs a real redis-server instead).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

INTRINSIC_TAGS: Final = (
    "Ref",
    "Condition",
    "Sub",
    "GetAtt",
    "ImportValue",
    "If",
    "Equals",
    "Select",
    "GetAZs",
    "Join",
    "Split",
    "FindInMap",
    "Not",
    "And",
    "Or",
    "Base64",
    "Cidr",
)
MOTO_UNSUPPORTED_TYPES: Final = frozenset(
    {
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::ElastiCache::SubnetGroup",
        "AWS::ElastiCache::ParameterGroup",
    }
)


class CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that also reads CloudFormation's short-form intrinsic tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    key = tag_suffix if tag_suffix in {"Ref", "Condition"} else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            resource, _, attribute = str(value).partition(".")
            value = [resource, attribute]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - YAML has no fourth node kind
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}")
    return {key: value}


def _register(tag_suffix: str) -> None:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        return _construct_intrinsic(loader, tag_suffix, node)

    CfnLoader.add_constructor(f"!{tag_suffix}", construct)


for _tag in INTRINSIC_TAGS:
    _register(_tag)


def load_yaml(text: str) -> dict[str, Any]:
    """Parse one template's text into long-form data (``{"Ref": ...}``, ``{"Fn::Sub": ...}``)."""
    data = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader derives from SafeLoader
    if not isinstance(data, dict):
        raise TypeError("a template must be a mapping")
    return data


def template_dir() -> Path:
    """``cloudformation/`` of this checkout (the local stack runs from the repository)."""
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        candidate = base / "cloudformation"
        if (candidate / "data.yaml").is_file():
            return candidate
    raise FileNotFoundError("cloudformation/data.yaml not found: run from the repository")


@cache
def template(stack: str) -> dict[str, Any]:
    """The parsed template of ``stack`` (``data``, ``messaging``...)."""
    return load_yaml((template_dir() / f"{stack}.yaml").read_text())


def parameters(stack: str, parameter_file: str = "staging") -> dict[str, str]:
    """A stack's parameters from ``cloudformation/parameters/<file>.json``."""
    values = json.loads((template_dir() / "parameters" / f"{parameter_file}.json").read_text())
    stack_values: dict[str, str] = values[stack]
    return stack_values


def references(value: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, ${X} and ${X.Attr} in Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref":
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found |= {name.split(".")[0] for name in _sub_names(text)}
                if isinstance(item, list):
                    found |= references(item[1])
            else:
                found |= references(item)
    return found


def _sub_names(text: str) -> set[str]:
    names = set()
    for part in text.split("${")[1:]:
        name = part.split("}", 1)[0]
        if not name.startswith("!"):
            names.add(name)
    return names


def for_moto(body: dict[str, Any]) -> dict[str, Any]:
    """The template as moto can deploy it (see the module docstring); the rest untouched."""
    dropped = {
        logical_id
        for logical_id, resource in body["Resources"].items()
        if resource["Type"] in MOTO_UNSUPPORTED_TYPES
    }
    changed = True
    while changed:  # also drop what reads a dropped resource, transitively
        changed = False
        for logical_id, resource in body["Resources"].items():
            if logical_id not in dropped and references(resource) & dropped:
                dropped.add(logical_id)
                changed = True
    resources = {
        logical_id: as_regional_table(resource)
        if resource["Type"] == "AWS::DynamoDB::GlobalTable"
        else resource
        for logical_id, resource in body["Resources"].items()
        if logical_id not in dropped
    }
    outputs = {
        name: output
        for name, output in body.get("Outputs", {}).items()
        if not references(output) & dropped
    }
    return {**body, "Resources": resources, "Outputs": outputs}


def as_regional_table(resource: dict[str, Any]) -> dict[str, Any]:
    """A global table as the AWS::DynamoDB::Table of its replica in the deploying region."""
    properties = dict(resource["Properties"])
    local_replica = properties.pop("Replicas")[0]
    if local_replica["Region"] != {"Ref": "AWS::Region"}:
        raise ValueError("the first replica must be the deploying region's")
    properties["PointInTimeRecoverySpecification"] = local_replica[
        "PointInTimeRecoverySpecification"
    ]
    properties["Tags"] = local_replica["Tags"]
    return {**resource, "Type": "AWS::DynamoDB::Table", "Properties": properties}


def deploy(
    cloudformation: Any, stack: str, environment: str, parameter_file: str = "staging"
) -> dict[str, str]:
    """Create ``kyperian-<env>-<stack>`` in the emulator; return the stack's outputs."""
    given = {**parameters(stack, parameter_file), "EnvironmentName": environment}
    name = f"kyperian-{environment}-{stack}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps(for_moto(template(stack))),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(
            f"{name}: {described['StackStatus']} {described.get('StackStatusReason')}"
        )
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
