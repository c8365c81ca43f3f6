"""Herald on AWS: one CDK app (`deploy.app`) with stacks by lifecycle (data, messaging,
compute, observability), built from the resource declaration `core/resources/declaration.py`
that provisioning reads too. `deploy.sizing` holds the measured figures the scaling targets,
the costs and the drain times of docs/deploy.md come from.

May import `core`; nothing imports `deploy`. Only `deploy.app` and `deploy.stacks` import
CDK (which needs Node.js to synthesize).
"""
