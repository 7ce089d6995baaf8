"""Make sure Debian's Chromium is there for the browser tests; install it when we can."""

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    if os.path.exists(CHROMIUM):
        return 0
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        print("note: /usr/bin/chromium is missing and cannot be installed here (needs root "
              "and apt-get); the browser tests will say so.", file=sys.stderr)
        return 0
    print("Installing Debian's chromium for the browser tests ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    if subprocess.call([apt, "install", "-y", "-q", "chromium"], **quiet) != 0:  # noqa: S603
        subprocess.call([apt, "update", "-q"], **quiet)  # noqa: S603
        subprocess.call([apt, "install", "-y", "-q", "chromium"], **quiet)  # noqa: S603
    return 0


if __name__ == "__main__":
    sys.exit(main())
