"""JSON Schemas for flow files and test files, for editors that autocomplete YAML.

A flow file holds any subset of the sections (the files of a bot are merged), so every section
is optional here; the loader still requires ``bot`` somewhere in the bot.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from voicebot.flows.schema import ActionDef, BotSettings, Flow, Intent, Queue, TestFile


class FlowFile(BaseModel):
    """One file under flows/ (all sections optional; files are merged)."""

    model_config = ConfigDict(extra="forbid", title="voicebot flow file")

    bot: BotSettings | None = None
    intents: dict[str, Intent] = Field(default_factory=dict)
    queues: dict[str, Queue] = Field(default_factory=dict)
    actions: dict[str, ActionDef] = Field(default_factory=dict)
    flows: dict[str, Flow] = Field(default_factory=dict)


def flow_file_schema() -> dict[str, Any]:
    return FlowFile.model_json_schema(by_alias=True)


def test_file_schema() -> dict[str, Any]:
    schema = TestFile.model_json_schema(by_alias=True)
    schema["title"] = "voicebot conversation test file"
    return schema
