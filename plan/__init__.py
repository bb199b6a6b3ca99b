"""The offline plan: `python -m plan STACK_OR_FILE [--json FILE] [--manifests DIR]`."""
