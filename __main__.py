"""agentic-platform: load the stack config, check capacity (`cluster.preflight`), build the
platform, export its outputs."""

import pulumi

from components.agentic_platform import AgenticPlatform
from components.config import ConfigError, load_config, load_secrets
from plan.preflight import stop_unless_capacity

try:
    config = load_config()
except ConfigError as err:
    for line in err.lines():
        pulumi.log.error(line)
    raise pulumi.RunError(f"invalid stack config ({len(err.problems)} problem(s))") from None

# Before anything is declared: a pool the account cannot launch stops the run with nothing built.
stop_unless_capacity(config, pulumi.Config("aws").get("region"))
platform = AgenticPlatform("platform", config, load_secrets())
for key, value in platform.outputs.items():
    pulumi.export(key, value)
