"""`python -m localstack.sandbox [--host 127.0.0.1] [--port 8025] [--quiet]`."""

import sys

from localstack.sandbox.server import main

sys.exit(main())
