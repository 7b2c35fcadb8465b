"""Read the shell commands out of ``runbooks/*.md`` and turn AWS CLI commands into API calls.

One parser for two users: ``kyperian ops runbooks check`` (and
``tests/unit/observability/test_runbooks.py``, which adds the resource-name checks) checks that
every ``aws ...`` command of every runbook names a real service, operation and options
(botocore's service models, the ones the AWS CLI is generated from), and ``kyperian ops drill``
(``kyperian/ops/drill.py``) executes the commands of marked blocks against the local stack, so a
drill proves the runbook's own text.

What is understood: fenced ```` ```bash ```` blocks (a preceding ``<!-- drill: name -->`` names
one), ``\\`` line continuations, comments, here-documents (skipped), pipelines and lists
(``|``, ``;``, ``&&``, ``||``), redirections, ``NAME=value`` / ``export`` assignments and
``NAME=$(command)`` substitutions, nested ``$(...)``. What is not: the rest of the shell. CLI
options become API parameters through the operation's input shape: scalars, lists of
scalars, JSON, ``file://`` and the simple ``Key=Value,...`` shorthand.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import botocore.session
import jmespath  # type: ignore[import-untyped]  # no stubs; only compile() is used
from botocore import xform_name
from botocore.exceptions import DataNotFoundError, UnknownServiceError
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

ROOT: Final = Path(__file__).resolve().parents[3]
RUNBOOKS: Final = ROOT / "runbooks"

CLI_SERVICE_NAMES: Final = {"s3api": "s3", "configservice": "config"}
"""AWS CLI service commands whose botocore name differs (the others are the same)."""

GLOBAL_OPTIONS: Final = {
    # option: takes a value
    "--region": True,
    "--output": True,
    "--query": True,
    "--profile": True,
    "--endpoint-url": True,
    "--cli-input-json": True,
    "--cli-read-timeout": True,
    "--cli-connect-timeout": True,
    "--cli-binary-format": True,
    "--color": True,
    "--ca-bundle": True,
    "--debug": False,
    "--no-cli-pager": False,
    "--no-paginate": False,
    "--no-verify-ssl": False,
    "--no-sign-request": False,
}
"""Options every ``aws`` command accepts (AWS CLI v2 global options)."""

PAGINATION_OPTIONS: Final = {"--max-items": True, "--starting-token": True, "--page-size": True}
"""Added by the CLI to operations that have a paginator."""


@dataclass(frozen=True)
class Customization:
    """A CLI command that is not a botocore operation, allowed explicitly."""

    options: Mapping[str, bool]
    positional: int
    reason: str


CUSTOMIZATIONS: Final[Mapping[tuple[str, str], Customization]] = {
    ("logs", "tail"): Customization(
        options={
            "--follow": False,
            "--since": True,
            "--format": True,
            "--filter-pattern": True,
            "--log-stream-names": True,
            "--log-stream-name-prefix": True,
        },
        positional=1,
        reason="AWS CLI v2 customization over FilterLogEvents (not in v1, no botocore operation)",
    ),
}
"""``aws <service> wait <waiter>`` is checked against botocore's waiter models instead."""

_ASSIGNMENT: Final = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_HEREDOC: Final = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_DRILL_MARKER: Final = re.compile(r"^\s*<!--\s*drill:\s*([a-z0-9-]+)\s*-->\s*$")
_FENCE: Final = re.compile(r"^(\s*)```(\S*)")
_SEPARATORS: Final = frozenset({"|", ";", "&&", "||", "&", "|&"})
_REDIRECTS: Final = frozenset({">", ">>", "<", "<<", "<<-", "2>", "&>", ">&"})


# --- Markdown and shell -------------------------------------------------------------------


@dataclass(frozen=True)
class CodeBlock:
    """One fenced shell block of a runbook page."""

    page: str
    line: int
    text: str
    drill: str | None = None


def code_blocks(path: Path) -> list[CodeBlock]:
    """The ``bash``/``sh`` blocks of a Markdown page, dedented, with their drill names."""
    blocks: list[CodeBlock] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    marker: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        found = _DRILL_MARKER.match(line)
        if found:
            marker = found.group(1)
            index += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                marker = None
            index += 1
            continue
        indent, language = fence.group(1), fence.group(2)
        body: list[str] = []
        start = index + 2  # the 1-based number of the block's first line (after the fence)
        index += 1
        while index < len(lines) and not lines[index].strip().startswith("```"):
            text = lines[index]
            body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
            index += 1
        index += 1
        if language in {"bash", "sh", "shell"}:
            blocks.append(CodeBlock(path.name, start, "\n".join(body), marker))
        marker = None
    return blocks


@dataclass(frozen=True)
class ShellLine:
    """One logical shell line (continuations joined) and where it starts."""

    page: str
    line: int
    text: str


def logical_lines(block: CodeBlock) -> list[ShellLine]:
    """Join ``\\`` continuations; drop blank lines, comments and here-document bodies."""
    result: list[ShellLine] = []
    raw = block.text.split("\n")
    index = 0
    while index < len(raw):
        start = index
        text = raw[index]
        while text.endswith("\\") and index + 1 < len(raw):
            index += 1
            text = text[:-1] + " " + raw[index].strip()
        index += 1
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        result.append(ShellLine(block.page, block.line + start, stripped))
        heredoc = _HEREDOC.search(stripped)
        if heredoc:
            terminator = heredoc.group(2)
            while index < len(raw) and raw[index].strip() != terminator:
                index += 1
            index += 1
    return result


@dataclass(frozen=True)
class Command:
    """A simple command: its words, and the variable it assigns (``NAME=$(...)``) if any.

    A plain assignment (``NAME=value``, ``export NAME=value``) is a command with no words and
    ``assign``/``value`` set. A word holding a command substitution is kept as its text
    (``$(date +%s)``); the substitution itself is also returned as a command of its own.
    """

    page: str
    line: int
    argv: tuple[str, ...]
    assign: str | None = None
    value: str | None = None
    redirect_out: str | None = None

    @property
    def is_aws(self) -> bool:
        return bool(self.argv) and self.argv[0] == "aws"

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _substitution_end(tokens: Sequence[str], start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index] == "(":
            depth += 1
        elif tokens[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unbalanced $( in {' '.join(tokens)!r}")


def _parse(tokens: Sequence[str], page: str, line: int) -> list[Command]:
    """Commands of a token list, nested substitutions first."""
    commands: list[Command] = []
    words: list[str] = []
    assign: str | None = None
    redirect_out: str | None = None
    pending_redirect: str | None = None

    def flush() -> None:
        nonlocal words, assign, redirect_out
        if words or assign:
            commands.extend(_split_assignments(words, assign, redirect_out, page, line))
        words, assign, redirect_out = [], None, None

    index = 0
    while index < len(tokens):
        token = tokens[index]
        opens_substitution = (
            token.endswith("$") and index + 1 < len(tokens) and tokens[index + 1] == "("
        )
        if opens_substitution:
            end = _substitution_end(tokens, index + 1)
            inner = tokens[index + 2 : end]
            inner_commands = _parse(inner, page, line)
            prefix = token[:-1]
            named = _ASSIGNMENT.match(prefix)
            if not words and named and named.group(2) == "" and len(inner_commands) == 1:
                command = inner_commands[0]
                commands.append(
                    Command(page, line, command.argv, assign=named.group(1), value=None)
                )
            else:
                commands.extend(inner_commands)
                words.append(prefix + "$(" + shlex.join(inner) + ")")
            index = end + 1
            continue
        if pending_redirect is not None:
            if pending_redirect in {">", ">>"}:
                redirect_out = token
            pending_redirect = None
        elif token in _REDIRECTS:
            pending_redirect = token
        elif token in _SEPARATORS:
            flush()
        elif token in {"(", ")"}:
            pass
        elif "$(" in token:
            # a substitution inside double quotes is one token: parse what it runs, keep the text
            for match in re.finditer(r"\$\(([^()]*)\)", token):
                commands.extend(_parse(_tokens(match.group(1)), page, line))
            words.append(token)
        else:
            words.append(token)
        index += 1
    flush()
    return commands


def _split_assignments(
    words: list[str], assign: str | None, redirect_out: str | None, page: str, line: int
) -> list[Command]:
    """``export A=1 B=2`` and ``A=1`` become assignments; anything else is a command."""
    if words and words[0] == "export":
        words = words[1:]
        pairs = [_ASSIGNMENT.match(word) for word in words]
        return [
            Command(page, line, (), assign=pair.group(1), value=pair.group(2))
            for pair in pairs
            if pair
        ]
    single = _ASSIGNMENT.match(words[0]) if len(words) == 1 else None
    if single:
        return [Command(page, line, (), assign=single.group(1), value=single.group(2))]
    return [Command(page, line, tuple(words), assign=assign, redirect_out=redirect_out)]


def commands_of(line: ShellLine) -> list[Command]:
    """Every command of one logical line, substitutions included."""
    return _parse(_tokens(line.text), line.page, line.line)


def page_commands(path: Path) -> list[Command]:
    """Every command of every shell block of a page, in order."""
    found: list[Command] = []
    for block in code_blocks(path):
        for line in logical_lines(block):
            found += commands_of(line)
    return found


def runbook_pages(directory: Path = RUNBOOKS) -> list[Path]:
    """``runbooks/*.md`` except the index."""
    return sorted(p for p in directory.glob("*.md") if p.name != "README.md")


# --- AWS CLI -> botocore ------------------------------------------------------------------


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def service_model(cli_service: str) -> ServiceModel:
    """botocore's model of an AWS CLI service command (``logs``, ``ecs``, ``s3api``...)."""
    name = CLI_SERVICE_NAMES.get(cli_service, cli_service)
    return _session().get_service_model(name)


@cache
def _operations(cli_service: str) -> dict[str, str]:
    """kebab-case CLI operation -> API operation name."""
    model = service_model(cli_service)
    return {xform_name(name, "-"): name for name in model.operation_names}


@cache
def _waiters(cli_service: str) -> dict[str, tuple[str, str]]:
    """kebab-case waiter -> (waiter name, the operation it polls)."""
    name = CLI_SERVICE_NAMES.get(cli_service, cli_service)
    try:
        model = _session().get_waiter_model(name)
    except (DataNotFoundError, UnknownServiceError):  # a service without waiters
        return {}
    return {
        xform_name(waiter, "-"): (waiter, model.get_waiter(waiter).operation)
        for waiter in model.waiter_names
    }


@cache
def _has_paginator(cli_service: str, operation: str) -> bool:
    name = CLI_SERVICE_NAMES.get(cli_service, cli_service)
    try:
        _session().get_paginator_model(name).get_paginator(operation)
    except (DataNotFoundError, UnknownServiceError, ValueError):  # no paginator for it
        return False
    return True


def option_name(member: str) -> str:
    """The CLI option of an input member: ``DesiredCount`` -> ``--desired-count``."""
    return "--" + xform_name(member, "-")


@dataclass
class AwsCommand:
    """An ``aws`` command split into service, operation, global options and options."""

    command: Command
    service: str
    operation: str
    waiter: str | None = None
    options: dict[str, list[str]] = field(default_factory=dict)
    globals: dict[str, str | None] = field(default_factory=dict)
    positional: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.command.where

    @property
    def customization(self) -> Customization | None:
        return CUSTOMIZATIONS.get((self.service, self.operation))

    @property
    def api_operation(self) -> str | None:
        """The botocore operation this command calls (the waiter's for ``wait``)."""
        if self.waiter is not None:
            found = _waiters(self.service).get(self.waiter)
            return found[1] if found else None
        return _operations(self.service).get(self.operation)

    def operation_model(self) -> OperationModel | None:
        name = self.api_operation
        return service_model(self.service).operation_model(name) if name else None

    def member_of(self, option: str) -> tuple[str, Shape] | None:
        """The input member an option sets (``--no-x`` sets boolean ``x`` to false)."""
        model = self.operation_model()
        if model is None or model.input_shape is None:
            return None
        members = model.input_shape.members
        by_option = {option_name(name): name for name in members}
        if option in by_option:
            name = by_option[option]
            return name, members[name]
        if option.startswith("--no-"):
            name = by_option.get("--" + option[len("--no-") :], "")
            if name and members[name].type_name == "boolean":
                return name, members[name]
        return None


def split_aws(command: Command) -> AwsCommand:
    """Split ``aws [globals] <service> <operation|wait waiter> [options] [positional]``."""
    words = list(command.argv[1:])
    globals_: dict[str, str | None] = {}
    rest: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in GLOBAL_OPTIONS:
            takes_value = GLOBAL_OPTIONS[word]
            globals_[word] = words[index + 1] if takes_value and index + 1 < len(words) else None
            index += 2 if takes_value else 1
            continue
        rest.append(word)
        index += 1
    if len(rest) < 2:
        raise ValueError(f"{command.where}: not an aws <service> <operation> command")
    service, operation, tail = rest[0], rest[1], rest[2:]
    parsed = AwsCommand(command, service, operation, globals=globals_)
    if operation == "wait":
        if not tail:
            raise ValueError(f"{command.where}: aws {service} wait without a waiter")
        parsed.waiter, tail = tail[0], tail[1:]
    current: str | None = None
    for word in tail:
        if word.startswith("--"):
            current = word
            parsed.options.setdefault(word, [])
        elif current is not None:
            parsed.options[current].append(word)
        else:
            parsed.positional.append(word)
    custom = parsed.customization
    if custom is not None:
        # options of a customization that take no value leave the next word positional
        for option, values in list(parsed.options.items()):
            if not custom.options.get(option, True) and values:
                parsed.positional += values
                parsed.options[option] = []
    return parsed


def problems(aws: AwsCommand) -> list[str]:
    """Why this command would not run, per botocore's models (empty when it is fine)."""
    where = f"{aws.where}: aws {aws.service} {aws.operation}"
    if aws.waiter:
        where += f" {aws.waiter}"
    try:
        service_model(aws.service)
    except UnknownServiceError:
        return [f"{where}: no AWS service {aws.service!r}"]
    custom = aws.customization
    if custom is not None:
        unknown = sorted(set(aws.options) - set(custom.options) - set(GLOBAL_OPTIONS))
        found = [f"{where}: unknown option {option}" for option in unknown]
        if len(aws.positional) != custom.positional:
            found.append(f"{where}: expects {custom.positional} positional argument(s)")
        return found
    model = aws.operation_model()
    if model is None:
        kind = "waiter" if aws.waiter else "operation"
        return [f"{where}: no such {kind}"]
    found = []
    allowed_extra = set(PAGINATION_OPTIONS) if _has_paginator(aws.service, model.name) else set()
    given: set[str] = set()
    for option, values in aws.options.items():
        member = aws.member_of(option)
        if member is None:
            if option not in allowed_extra:
                found.append(f"{where}: unknown option {option}")
            continue
        name, shape = member
        given.add(name)
        found += _value_problems(where, option, shape, values)
    if aws.positional:
        found.append(f"{where}: unexpected arguments {aws.positional}")
    if "--cli-input-json" not in aws.globals and model.input_shape is not None:
        missing = sorted(set(model.input_shape.required_members) - given)
        found += [f"{where}: missing required {option_name(name)}" for name in missing]
    return found


def _value_problems(where: str, option: str, shape: Shape, values: list[str]) -> list[str]:
    if shape.type_name == "boolean":
        return [f"{where}: {option} takes no value"] if values else []
    if not values:
        return [f"{where}: {option} needs a value"]
    if shape.type_name != "list" and len(values) > 1:
        return [f"{where}: {option} takes one value, got {values}"]
    scalar = shape.member if isinstance(shape, ListShape) else shape
    enum: list[str] = list(getattr(scalar, "enum", None) or [])
    literal = [v for v in values if "$" not in v and not v.startswith(("file://", "[", "{"))]
    bad = [v for v in literal if enum and v not in enum]
    return [f"{where}: {option} {v!r} is not one of {enum}" for v in bad]


# --- values ---------------------------------------------------------------------------------


def _read_value(text: str) -> str:
    if text.startswith("file://"):
        return Path(text[len("file://") :]).read_text(encoding="utf-8")
    return text


def _split_top_level(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _shorthand(shape: Shape, text: str) -> Any:
    """``Key=Value,Key2=Value2`` for a structure or map (the shorthand the runbooks use)."""
    result: dict[str, Any] = {}
    for pair in _split_top_level(text, ","):
        key, _, value = pair.partition("=")
        if isinstance(shape, StructureShape):
            result[key] = _scalar(shape.members[key], value)
        elif isinstance(shape, MapShape):
            result[key] = _scalar(shape.value, value)
        else:
            raise ValueError(f"shorthand for a {shape.type_name}")
    return result


_SCALARS: Final[dict[str, Callable[[str], Any]]] = {
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": lambda text: text.lower() == "true",
    "blob": str.encode,
}


def _scalar(shape: Shape, text: str) -> Any:
    kind = shape.type_name
    if kind in _SCALARS:
        return _SCALARS[kind](text)
    if kind in {"structure", "map", "list"}:
        raw = _read_value(text)
        if raw.lstrip().startswith(("{", "[")):
            return json.loads(raw)
        return _shorthand(shape, raw)
    return text


def to_value(option: str, shape: Shape, values: list[str]) -> Any:
    """The API value of a CLI option's words, by the member's shape."""
    if shape.type_name == "boolean":
        return not option.startswith("--no-")
    if isinstance(shape, ListShape):
        if len(values) == 1 and _read_value(values[0]).lstrip().startswith("["):
            return json.loads(_read_value(values[0]))
        return [_scalar(shape.member, value) for value in values]
    return _scalar(shape, values[0])


def to_params(aws: AwsCommand) -> dict[str, Any]:
    """API parameters of an (expanded) aws command, keyed by input member name."""
    params: dict[str, Any] = {}
    for option, values in aws.options.items():
        member = aws.member_of(option)
        if member is None:
            continue
        name, shape = member
        params[name] = to_value(option, shape, values)
    return params


# --- variables --------------------------------------------------------------------------------

_VARIABLE: Final = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*)(##[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


def expand(text: str, variables: Mapping[str, str], strict: bool = True) -> str:
    """Expand ``$NAME``, ``${NAME}`` and ``${NAME##pattern}`` (longest prefix removal).

    Unknown names raise ``KeyError`` when ``strict``, else stay as written.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name not in variables:
            if strict:
                raise KeyError(name)
            return match.group(0)
        value = variables[name]
        trim = match.group(2)
        if trim:
            pattern = trim[2:]
            regex = "^" + re.escape(pattern).replace(r"\*", ".*")
            value = re.sub(regex, "", value, count=1)
        return value

    return _VARIABLE.sub(replace, text)


def expand_command(command: Command, variables: Mapping[str, str], strict: bool = True) -> Command:
    """The command with variables expanded in every word."""
    return Command(
        command.page,
        command.line,
        tuple(expand(word, variables, strict) for word in command.argv),
        command.assign,
        expand(command.value, variables, strict) if command.value is not None else None,
        expand(command.redirect_out, variables, strict) if command.redirect_out else None,
    )


def iter_aws(commands: Sequence[Command]) -> Iterator[AwsCommand]:
    for command in commands:
        if command.is_aws:
            yield split_aws(command)


# --- the check ----------------------------------------------------------------------------------


def check(pages: Sequence[Path] | None = None, environment: str = "production") -> list[str]:
    """Why any ``aws`` command of the pages would not run; empty when every one would.

    Each command is filled with ``ENV=environment`` and ``AWS_REGION=us-east-1`` (other
    variables stay as written) and checked against botocore's models (``problems``), and each
    ``--query`` is compiled as the CLI would (a typo fails rather than filters). What names a
    resource the templates create is the unit test's part (it needs the templates' catalog).
    """
    found: list[str] = []
    variables = {"ENV": environment, "AWS_REGION": "us-east-1"}
    for path in runbook_pages() if pages is None else pages:
        try:
            commands = page_commands(path)
        except ValueError as exc:  # shlex: an unclosed quote; ours: an unbalanced $(
            found.append(f"{path.name}: a shell block does not parse: {exc}")
            continue
        for command in commands:
            if not command.is_aws:
                continue
            aws = split_aws(expand_command(command, variables, strict=False))
            found += problems(aws)
            query = aws.globals.get("--query")
            if query is not None:
                try:
                    jmespath.compile(query)
                except jmespath.exceptions.ParseError as exc:
                    reason = str(exc).splitlines()[0]
                    found.append(
                        f"{aws.where}: aws {aws.service} {aws.operation}: --query {query!r}: "
                        f"{reason}"
                    )
    return found
