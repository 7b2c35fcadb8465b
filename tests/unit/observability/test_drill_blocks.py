"""The blocks ``make drill`` runs exist, and their commands become valid API calls.

The drill itself needs the local stack (``make drill``); this checks, without it, that every
``<!-- drill: name -->`` marker of the runbooks is one a drill reads (and the reverse), and
that each ``aws`` command of those blocks converts to parameters botocore's own validator
accepts - the conversion the drill uses to call the emulator.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from botocore.validate import ParamValidator

from kyperian.ops import drill
from kyperian.ops.runbooks import (
    Command,
    code_blocks,
    commands_of,
    expand,
    expand_command,
    logical_lines,
    runbook_pages,
    split_aws,
    to_params,
)

SAMPLE = {
    "ENV": "local",
    "AWS_REGION": "us-east-1",
    "DLQ_URL": "http://127.0.0.1:4566/000000000000/kyperian-local-signals-dlq",
    "QUEUE_URL": "http://127.0.0.1:4566/000000000000/kyperian-local-signals",
    "DLQ_ARN": "arn:aws:sqs:us-east-1:000000000000:kyperian-local-signals-dlq",
    "QUEUE_ARN": "arn:aws:sqs:us-east-1:000000000000:kyperian-local-signals",
    "NEW_KEY": "a" * 40,
    "OLD_KEY": "b" * 40,
    "PREVIOUS_VERSION": "9b0a4c2e-2f4e-4c1e-9d2a-1b2c3d4e5f60",
}


def marked() -> dict[tuple[str, str], list[Command]]:
    """(page, drill name) -> the commands of that block."""
    blocks = {}
    for path in runbook_pages():
        for block in code_blocks(path):
            if block.drill:
                commands: list[Command] = []
                for line in logical_lines(block):
                    commands += commands_of(line)
                blocks[(path.name, block.drill)] = commands
    return blocks


def drill_source() -> str:
    return Path(drill.__file__).read_text(encoding="utf-8")


def test_every_marker_is_read_by_a_drill_and_every_read_block_is_marked() -> None:
    # GIVEN the blocks the drills read (run_block(page, name) in kyperian/ops/drill.py)
    read = set(re.findall(r'run_block\(\s*"([a-z-]+\.md)",\s*"([a-z-]+)"\s*\)', drill_source()))
    # THEN they are exactly the marked blocks of the runbooks
    assert read == set(marked())
    # AND each drill's page is a runbook
    assert {page for page, _ in drill.DRILLS.values()} <= {p.name for p in runbook_pages()}


@pytest.mark.parametrize(("page", "name"), sorted(marked()))
def test_drilled_commands_become_valid_api_calls(page: str, name: str) -> None:
    commands = marked()[(page, name)]
    aws = [c for c in commands if c.is_aws]
    assert aws, (page, name)
    for command in aws:
        # GIVEN the command with the drill's variables (files stay unread)
        filled = split_aws(expand_command(command, SAMPLE))
        filled.options = {
            option: values
            for option, values in filled.options.items()
            if not any(v.startswith("file://") for v in values)
        }
        params = to_params(filled)
        model = filled.operation_model()
        assert model is not None
        assert model.input_shape is not None
        # THEN botocore's validator accepts what the drill will send
        report = ParamValidator().validate(params, model.input_shape)
        assert not report.has_errors(), (command.where, report.generate_report())


def test_shell_expansion_handles_the_forms_the_runbooks_use() -> None:
    values = {"TASK_ARN": "arn:aws:ecs:us-east-1:1:task/kyperian-production/abc123", "ENV": "x"}
    assert expand("engine/engine/${TASK_ARN##*/}", values) == "engine/engine/abc123"
    assert expand("kyperian-${ENV}-service and $ENV", values) == "kyperian-x-service and x"
    with pytest.raises(KeyError):
        expand("$UNSET", values)
    assert expand("$UNSET", values, strict=False) == "$UNSET"
