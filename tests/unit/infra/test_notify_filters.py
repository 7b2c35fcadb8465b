"""Each channel's notice filter is a compute parameter that reaches the engine as its setting.

The parameters are comma-separated (what an operator types); the settings want JSON lists,
so the template rebuilds them. These tests render the template with chosen values and build
``Settings`` from the variables the container would get.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from kyperian.domain.notices import DEFAULT_KINDS, NoticeKind
from kyperian.settings import Settings
from tests.unit.infra.cfn import TEST_REGION, _Renderer, load_template

CHANNELS = {
    "NotifyTelegramEvents": "notify_telegram_events",
    "NotifyDiscordEvents": "notify_discord_events",
    "NotifySlackEvents": "notify_slack_events",
    "NotifyEmailEvents": "notify_sns_events",
}


def _container_env(**values: str) -> dict[str, str]:
    """The engine container's KYPERIAN_NOTIFY_* variables for production with ``values``."""
    template = load_template("compute")
    parameters = {**template.parameter_values("production"), **values}
    body: dict[str, Any] = _Renderer(template, parameters, TEST_REGION).render(template.body)
    [container] = [
        c
        for c in body["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
        if c["Name"] == "engine"
    ]
    return {
        e["Name"]: e["Value"]
        for e in container["Environment"]
        if e["Name"].startswith("KYPERIAN_NOTIFY_")
    }


@pytest.mark.parametrize("parameter", sorted(CHANNELS))
def test_the_allowed_kinds_are_exactly_the_notice_kinds(parameter: str) -> None:
    # GIVEN the parameter's pattern
    pattern = load_template("compute").parameters[parameter]["AllowedPattern"]
    # THEN its alternatives are the code's kinds, no more, no fewer (a new kind fails here)
    groups = set(re.findall(r"\(([a-z_|]+)\)", pattern))
    assert len(groups) == 1
    assert set(groups.pop().split("|")) == {kind.value for kind in NoticeKind}
    # AND it takes a list or nothing, and refuses what the engine could not read
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, "decision,veto,alarm")
    assert re.fullmatch(pattern, "decision_other")
    for bad in ("decision,", "decision, veto", "decisions", '["decision"]', "DECISION"):
        assert not re.fullmatch(pattern, bad), bad


def test_chosen_filters_reach_the_engine_as_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN Slack asks for decisions, halts and alarms; e-mail for everything; two symbols
    every = ",".join(kind.value for kind in NoticeKind)
    env = _container_env(
        NotifySlackEvents="decision,halt,alarm", NotifyEmailEvents=every, NotifySymbols="AAPL,MSFT"
    )
    # WHEN the engine reads its settings from the container's variables
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    # THEN each channel's filter is what was asked; the others keep the default
    assert env["KYPERIAN_NOTIFY_SLACK_EVENTS"] == '["decision","halt","alarm"]'
    assert settings.notify_slack_events == {NoticeKind.DECISION, NoticeKind.HALT, NoticeKind.ALARM}
    assert settings.notify_sns_events == frozenset(NoticeKind)
    assert settings.notify_telegram_events == DEFAULT_KINDS
    assert settings.notify_symbols == {"AAPL", "MSFT"}


def test_empty_filters_set_no_variable_so_the_defaults_apply() -> None:
    # GIVEN the parameter files as they ship (every filter empty)
    env = _container_env()
    # THEN no filter variable is set: every kind but decision_other, every symbol
    assert not {f"KYPERIAN_{field.upper()}" for field in CHANNELS.values()} & set(env)
    assert "KYPERIAN_NOTIFY_SYMBOLS" not in env
