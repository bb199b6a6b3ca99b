"""The platform's domain: facts and arithmetic that the stack config, the components, the plan and
the policies all need, and that depend on nothing of the program (no `components`, `plan` or
`policies` import, no Pulumi): units and quantities, EC2 instance facts, model sizing and fit
(and what the models of a namespace request at maxReplicas), the chart and image pins.

A top-level package, not `components/domain/`: the plan's admission and the policy pack use it
too, and importing it must not run anything of the program's packages (`tests/test_architecture.py`
enforces the direction). Not `platform`: that is a standard-library module, and `platform/` holds
the platform's data files.
"""
