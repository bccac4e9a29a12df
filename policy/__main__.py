"""The bacalhau-logs policy pack: ``pulumi preview --policy-pack policy``."""

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy
from rules import RULES  # type: ignore[import-not-found]

PolicyPack(
    name="bacalhau-logs-security",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(name=name, description=description, validate=validate)
        for name, (description, validate) in RULES.items()
    ],
)
