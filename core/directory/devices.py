"""Device tokens → SNS platform endpoints, so users register what their app has (an FCM
registration token, an APNs device token), not SNS ARNs.

Each platform has one SNS platform application per stack, named `<prefix>-fcm` (platform
GCM, which SNS uses for FCM) and `<prefix>-apns` (APNS). Provisioning creates them against
an emulator; on real AWS they need the provider's credentials and are created once by an
operator under these names. Registering a token creates its endpoint, or finds and
re-enables the one SNS already has for that token, and returns the endpoint ARN that the
profile's `push_endpoints` holds and the push worker publishes to.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Literal

from botocore.exceptions import ClientError

from core.aws import errors as aws_errors

Platform = Literal["fcm", "apns"]
SNS_PLATFORM: dict[str, str] = {"fcm": "GCM", "apns": "APNS"}
_EXISTING = re.compile(r"Endpoint (arn:\S+) already exists")


class PlatformNotSetUp(Exception):
    """This stack has no platform application for the platform."""


def application_name(prefix: str, platform: str) -> str:
    return f"{prefix}-{platform}"


class DeviceRegistry:
    def __init__(self, sns: Any, prefix: str) -> None:
        self._sns = sns
        self._prefix = prefix
        self._apps: dict[str, str] = {}
        self._lock = threading.Lock()

    def application_arn(self, platform: str) -> str:
        with self._lock:
            if platform not in self._apps:
                wanted = application_name(self._prefix, platform)
                for page in self._sns.get_paginator("list_platform_applications").paginate():
                    for app in page.get("PlatformApplications", []):
                        arn = str(app["PlatformApplicationArn"])
                        if arn.rsplit("/", 1)[-1] == wanted:
                            self._apps[platform] = arn
            if platform not in self._apps:
                raise PlatformNotSetUp(
                    f"no SNS platform application {application_name(self._prefix, platform)!r}"
                    " on this stack"
                )
            return self._apps[platform]

    def register(self, platform: str, token: str, user_id: str) -> str:
        """The endpoint ARN for this device token, enabled and tagged with the user."""
        app = self.application_arn(platform)
        try:
            resp = self._sns.create_platform_endpoint(
                PlatformApplicationArn=app, Token=token, CustomUserData=user_id
            )
            arn = str(resp["EndpointArn"])
        except ClientError as exc:
            found = _EXISTING.search(str(exc.response.get("Error", {}).get("Message", "")))
            if aws_errors.error_code(exc) != "InvalidParameter" or not found:
                raise
            arn = found.group(1)  # the token's endpoint, with other attributes: update it
        self._sns.set_endpoint_attributes(
            EndpointArn=arn, Attributes={"Enabled": "true", "CustomUserData": user_id}
        )
        return arn


def ensure_platform_applications(sns: Any, prefix: str) -> None:
    """For an emulator: one application per platform, with placeholder credentials (the
    emulator checks none). Idempotent: CreatePlatformApplication returns an existing one."""
    for platform, sns_platform in SNS_PLATFORM.items():
        sns.create_platform_application(
            Name=application_name(prefix, platform),
            Platform=sns_platform,
            Attributes={"PlatformCredential": "local-emulator-placeholder"},
        )
