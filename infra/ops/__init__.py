"""Operator commands against a running stack: `python -m infra.ops query|archive|status`."""
