"""Settings that guard the deployment: public sandbox credentials only in sandbox mode."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from core.platform.settings import Settings
from tests.support import ROOT


def test_the_sandbox_twilio_token_is_refused_outside_sandbox_mode() -> None:
    with pytest.raises(ValidationError, match="HERALD_TWILIO_AUTH_TOKEN"):
        Settings(_env_file=None, sandbox=False)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="HERALD_TWILIO_ACCOUNT_SID"):
        Settings(_env_file=None, sandbox=False, twilio_auth_token="real")  # type: ignore[call-arg]


def test_real_credentials_or_sandbox_mode_start() -> None:
    assert Settings(_env_file=None).sandbox  # type: ignore[call-arg]
    real = Settings(
        _env_file=None,  # type: ignore[call-arg]
        sandbox=False,
        twilio_account_sid="AC0123456789abcdef0123456789abcdef",
        twilio_auth_token="real-token",
    )
    assert real.twilio_auth_token == "real-token"


def test_a_process_refuses_to_start_with_the_sandbox_token() -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k != "AWS_PROFILE"
    }
    env["HERALD_SANDBOX"] = "false"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from core.platform.settings import Settings; Settings(_env_file=None)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "HERALD_TWILIO_AUTH_TOKEN" in proc.stderr
