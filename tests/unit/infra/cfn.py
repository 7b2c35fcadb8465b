"""Read the CloudFormation templates and parameter files the way CloudFormation would.

The loader turns the short-form intrinsics (``!Ref``, ``!Sub``, ``!GetAtt`` ...) into their
long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``), so tests can compare plain data. ``render``
then evaluates what can be known before a deployment - parameters (from the environment's
parameter file, else the default), pseudo parameters, ``Fn::Sub``, ``Fn::If`` and conditions,
``Fn::FindInMap``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::GetAZs`` - and leaves
what only a deployment knows (``Fn::GetAtt``, ``Fn::ImportValue``, ``Ref`` to a resource, and
their ``${...}`` inside ``Fn::Sub``) as it is. It never imports the application.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from kyperian.local.templates import load_yaml

REPO_ROOT: Final = Path(__file__).resolve().parents[3]
TEMPLATE_DIR: Final = REPO_ROOT / "cloudformation"
PARAMETER_DIR: Final = TEMPLATE_DIR / "parameters"

#: Parameters that the deploy workflow fills at deploy time, so no parameter file holds them.
DEPLOY_TIME_PARAMETERS: Final[Mapping[str, frozenset[str]]] = {
    "api": frozenset({"CodeS3Bucket", "CodeS3Key"}),
    "compute": frozenset({"ImageTag"}),
}

#: Values the tests use for the deploy-time parameters.
DEPLOY_TIME_VALUES: Final[Mapping[str, str]] = {
    "CodeS3Bucket": "kyperian-test-artifacts",
    "CodeS3Key": "ingest/test.zip",
    "ImageTag": "test-tag",
}

TEST_REGION: Final = "us-east-1"
TEST_ACCOUNT: Final = "123456789012"


def region_of(parameter_file: str) -> str:
    """Region a parameter file deploys to: ``<env>-dr`` goes to ``<env>``'s config DrRegion."""
    if parameter_file.endswith("-dr"):
        primary = load_parameter_file(parameter_file.removesuffix("-dr"))
        return primary["config"]["DrRegion"]
    return TEST_REGION


class _NoValue:
    """``AWS::NoValue``: removes the property or list item that evaluates to it."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()


def template_names() -> list[str]:
    """Stack names, one per ``cloudformation/*.yaml``."""
    return sorted(path.stem for path in TEMPLATE_DIR.glob("*.yaml"))


def parameter_file_names() -> list[str]:
    """Names of the parameter files, e.g. ``production`` and ``production-dr``."""
    return sorted(path.stem for path in PARAMETER_DIR.glob("*.json"))


@cache
def load_parameter_file(name: str) -> dict[str, dict[str, str]]:
    """The stack -> {parameter: value} object of ``cloudformation/parameters/<name>.json``."""
    data = json.loads((PARAMETER_DIR / f"{name}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{name}.json must hold one object per stack")
    return data


@cache
def load_template(name: str) -> Template:
    """The template ``cloudformation/<name>.yaml``."""
    path = TEMPLATE_DIR / f"{name}.yaml"
    return Template(name=name, body=load_yaml(path.read_text(encoding="utf-8")))


_PATH_TOKEN: Final = re.compile(r"([^.\[\]]+)|\[(\d+)\]|\[([^=\]]+)=([^\]]*)\]|(\.)")
_SUB_VARIABLE: Final = re.compile(r"\$\{(!?)([^}]+)\}")


def lookup(data: Any, path: str) -> Any:
    """Follow a path such as ``Resources.Vpc.Properties.Tags[Key=Name].Value`` or ``Rules[0]``.

    ``[Key=value]`` picks the single list item whose ``Key`` equals ``value``.

    Raises
    ------
    KeyError
        When a step of the path does not exist, naming the step.
    """
    current = data
    position = 0
    for match in _PATH_TOKEN.finditer(path):
        if match.start() != position:
            raise ValueError(f"cannot parse path {path!r} at {position}")
        position = match.end()
        name, index, field, wanted, dot = match.groups()
        if dot:
            continue
        if name is not None:
            if not isinstance(current, dict) or name not in current:
                raise KeyError(f"{path}: no {name!r}")
            current = current[name]
        elif index is not None:
            if not isinstance(current, list) or int(index) >= len(current):
                raise KeyError(f"{path}: no item {index}")
            current = current[int(index)]
        else:
            if not isinstance(current, list):
                raise KeyError(f"{path}: {field}={wanted} needs a list")
            found = [
                item for item in current if isinstance(item, dict) and item.get(field) == wanted
            ]
            if len(found) != 1:
                raise KeyError(f"{path}: {len(found)} items with {field}={wanted}")
            current = found[0]
    if position != len(path):
        raise ValueError(f"cannot parse path {path!r} at {position}")
    return current


@dataclass(frozen=True)
class Template:
    """One template: its long-form body and what an environment's parameters make of it."""

    name: str
    body: dict[str, Any]

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.body.get("Parameters", {}))

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.body.get("Resources", {}))

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.body.get("Outputs", {}))

    def resources_of_type(self, resource_type: str) -> dict[str, Any]:
        """Logical id -> resource for every resource of ``resource_type``."""
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == resource_type
        }

    def parameter_values(self, parameter_file: str) -> dict[str, Any]:
        """Effective parameter values: parameter file, else default, else deploy-time value.

        Number parameters become ``int``, as they arrive in the resource.
        """
        given = load_parameter_file(parameter_file).get(self.name, {})
        values: dict[str, Any] = {}
        for key, spec in self.parameters.items():
            if key in given:
                raw: Any = given[key]
            elif "Default" in spec:
                raw = spec["Default"]
            elif key in DEPLOY_TIME_VALUES:
                raw = DEPLOY_TIME_VALUES[key]
            else:
                raise KeyError(f"{self.name}: no value for parameter {key} in {parameter_file}")
            values[key] = int(raw) if spec.get("Type") == "Number" else raw
        return values

    def rendered(self, parameter_file: str) -> dict[str, Any]:
        """The body with everything known before deployment evaluated (see module doc)."""
        return _rendered(self.name, parameter_file)

    def get(self, path: str, parameter_file: str = "production") -> Any:
        """``lookup`` in the body rendered with ``parameter_file``."""
        return lookup(self.rendered(parameter_file), path)

    def condition(self, name: str, parameter_file: str = "production") -> bool:
        """Value of one of the template's conditions for ``parameter_file``."""
        renderer = _Renderer(self, self.parameter_values(parameter_file), region_of(parameter_file))
        return renderer.condition(name)


@cache
def _rendered(name: str, parameter_file: str) -> dict[str, Any]:
    template = load_template(name)
    renderer = _Renderer(
        template, template.parameter_values(parameter_file), region_of(parameter_file)
    )
    result = renderer.render(template.body)
    if not isinstance(result, dict):  # pragma: no cover - a mapping renders to a mapping
        raise TypeError("rendered template is not a mapping")
    return result


class _Renderer:
    def __init__(self, template: Template, parameters: Mapping[str, Any], region: str) -> None:
        self._template = template
        self._region = region
        self._names: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": TEST_ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": f"kyperian-test-{template.name}",
            "AWS::NoValue": NO_VALUE,
            **parameters,
        }
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::GetAZs": self._get_azs,
        }

    def render(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.render(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            if key in self._functions:
                return self._functions[key](argument)
        rendered = {key: self.render(item) for key, item in value.items()}
        return {key: item for key, item in rendered.items() if item is not NO_VALUE}

    def condition(self, name: str) -> bool:
        return self._truth(self._template.body["Conditions"][name])

    def _truth(self, expression: Any) -> bool:
        if not isinstance(expression, dict) or len(expression) != 1:
            raise ValueError(f"not a condition: {expression!r}")
        (key, argument), *_ = expression.items()
        if key == "Condition":
            return self.condition(argument)
        if key == "Fn::Equals":
            left, right = (self.render(item) for item in argument)
            return bool(left == right)
        if key == "Fn::Not":
            return not self._truth(argument[0])
        if key == "Fn::And":
            return all(self._truth(item) for item in argument)
        if key == "Fn::Or":
            return any(self._truth(item) for item in argument)
        raise ValueError(f"not a condition function: {key}")

    def _ref(self, name: str) -> Any:
        return self._names.get(name, {"Ref": name})

    def _sub(self, argument: Any) -> Any:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.render(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            literal, name = match.groups()
            if literal:
                return "${" + name + "}"
            value = variables.get(name, self._names.get(name))
            return str(value) if isinstance(value, str | int | float) else match.group(0)

        return _SUB_VARIABLE.sub(replace, text)

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.render(when_true if self.condition(name) else when_false)

    def _find_in_map(self, argument: list[Any]) -> Any:
        mapping, first, second = (self.render(item) for item in argument)
        return self._template.body["Mappings"][mapping][first][second]

    def _join(self, argument: list[Any]) -> Any:
        delimiter, items = argument[0], self.render(argument[1])
        if isinstance(items, list) and all(isinstance(item, str) for item in items):
            return delimiter.join(items)
        return {"Fn::Join": [delimiter, items]}

    def _select(self, argument: list[Any]) -> Any:
        index, items = self.render(argument[0]), self.render(argument[1])
        if isinstance(items, list):
            return items[int(index)]
        return {"Fn::Select": [index, items]}

    def _split(self, argument: list[Any]) -> Any:
        delimiter, text = argument[0], self.render(argument[1])
        if isinstance(text, str):
            return text.split(delimiter)
        return {"Fn::Split": [delimiter, text]}

    def _get_azs(self, argument: Any) -> list[str]:
        region = self.render(argument) or self._region
        return [f"{region}{zone}" for zone in "abcdef"]
