"""The embedded AWS emulator for local runs: moto in server mode on loopback.

    python -m localstack.emulator [--port 4566]

Users with Docker can run LocalStack instead (docker-compose.yml); the code under test
only ever sees `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
