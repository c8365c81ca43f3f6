"""Settings that guard the deployment: public sandbox credentials only in sandbox mode."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.platform.settings import Settings
from tests.support import ROOT


def test_the_sandbox_twilio_credentials_are_refused_outside_sandbox_mode() -> None:
    outside = Settings(_env_file=None, sandbox=False)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="HERALD_TWILIO_AUTH_TOKEN"):
        outside.real_twilio_credentials()
    token_only = Settings(_env_file=None, sandbox=False, twilio_auth_token="real")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="HERALD_TWILIO_ACCOUNT_SID"):
        token_only.real_twilio_credentials()


def test_real_credentials_or_sandbox_mode_pass() -> None:
    assert Settings(_env_file=None).real_twilio_credentials()  # type: ignore[call-arg]
    real = Settings(
        _env_file=None,  # type: ignore[call-arg]
        sandbox=False,
        twilio_account_sid="AC0123456789abcdef0123456789abcdef",
        twilio_auth_token="real-token",
    )
    assert real.real_twilio_credentials() == ("AC0123456789abcdef0123456789abcdef", "real-token")


API_START = """
from api.services import Services
from core.aws.clients import AwsClients
from core.platform.settings import Settings
settings = Settings(_env_file=None)
Services.build(settings, AwsClients(settings))
"""


def test_the_api_refuses_to_start_with_the_sandbox_token() -> None:
    """The API verifies Twilio's receipts with the token: a public one would accept forged
    receipts, so the process exits before serving."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k != "AWS_PROFILE"
    }
    env.update(HERALD_SANDBOX="false", AWS_DEFAULT_REGION="us-east-1")
    proc = subprocess.run(
        [sys.executable, "-c", API_START], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "HERALD_TWILIO_AUTH_TOKEN" in proc.stderr
