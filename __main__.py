"""agentic-platform: load the stack config, build the platform, export its outputs."""

import pulumi

from components.agentic_platform import AgenticPlatform
from components.config import ConfigError, load_config, load_secrets

try:
    config = load_config()
except ConfigError as err:
    for line in err.lines():
        pulumi.log.error(line)
    raise pulumi.RunError(f"invalid stack config ({len(err.problems)} problem(s))") from None

platform = AgenticPlatform("platform", config, load_secrets())
for key, value in platform.outputs.items():
    pulumi.export(key, value)
