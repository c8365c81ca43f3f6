"""The deployment's settings, from CDK context (`cdk.json`, or `-c key=value`): plain data,
so it is read the same way by the app, the tests and docs/deploy.md.

| context key | default | meaning |
|---|---|---|
| `prefix` | `herald` | `HERALD_RESOURCE_PREFIX` of every resource name |
| `compute` | `fargate` | `lambda` runs the router and the workers as Lambda functions |
| `<service>.min`, `<service>.max` | see `DEFAULT_BOUNDS` | task count bounds per service |
| `lambdaMaxConcurrency` | `20` | most concurrent invocations per SQS event source |
| `certificateArn` | unset | HTTPS on the load balancer (HTTP only without it) |
| `alarmEmail` | unset | subscribes this address to the alarm topic |
| `publicBaseUrl` | unset | `HERALD_PUBLIC_BASE_URL`: the API's URL as providers see it |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from core.platform.settings import Settings
from core.resources.declaration import Resources, declare

Compute = Literal["fargate", "lambda"]

DEFAULT_BOUNDS: dict[str, tuple[int, int]] = {
    "api": (2, 10),
    "router": (1, 10),
    "evaluator": (1, 4),
    "scheduler": (1, 1),
    "due-sender": (1, 1),
    "listener": (1, 1),
    "reconciler": (1, 1),
    "worker": (1, 20),  # each channel's worker
}


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class DeployConfig:
    prefix: str = "herald"
    compute: Compute = "fargate"
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)
    lambda_max_concurrency: int = 20
    certificate_arn: str | None = None
    alarm_email: str | None = None
    public_base_url: str | None = None
    visibility_timeout_seconds: int = _default("visibility_timeout_seconds")
    max_receives: int = _default("max_receives")

    def resources(self) -> Resources:
        return declare(self.prefix, self.visibility_timeout_seconds, self.max_receives)

    def bounds_of(self, service: str) -> tuple[int, int]:
        kind = "worker" if service.startswith("worker-") else service
        low, high = DEFAULT_BOUNDS[kind]
        return self.bounds.get(service, (low, high))

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> DeployConfig:
        """`get` is a construct's `node.try_get_context`."""
        compute = str(get("compute") or "fargate")
        if compute not in ("fargate", "lambda"):
            raise ValueError(f"context compute={compute!r}: fargate or lambda")
        bounds: dict[str, tuple[int, int]] = {}
        services = [*DEFAULT_BOUNDS, *(f"worker-{c}" for c in _channels())]
        for service in services:
            low, high = get(f"{service}.min"), get(f"{service}.max")
            if low is not None or high is not None:
                kind = "worker" if service.startswith("worker-") else service
                d_low, d_high = DEFAULT_BOUNDS[kind]
                pair = (int(low if low is not None else d_low), int(high or d_high))
                if not 0 <= pair[0] <= pair[1]:
                    raise ValueError(f"context {service}.min/.max: {pair} is not min <= max")
                bounds[service] = pair
        return cls(
            prefix=str(get("prefix") or "herald"),
            compute=compute,  # type: ignore[arg-type]
            bounds=bounds,
            lambda_max_concurrency=int(get("lambdaMaxConcurrency") or 20),
            certificate_arn=get("certificateArn") or None,
            alarm_email=get("alarmEmail") or None,
            public_base_url=get("publicBaseUrl") or None,
        )


def _channels() -> tuple[str, ...]:
    from core.catalogue.event_types import CHANNELS

    return CHANNELS
