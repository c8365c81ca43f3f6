"""AWS resources for Herald: provisioning, and the embedded emulator for local runs."""
