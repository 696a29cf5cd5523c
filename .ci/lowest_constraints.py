"""Print a pip constraints file pinning each ``install_requires`` of setup.cfg at its lower bound (``>=X`` -> ``==X``).

pip has no ``--resolution=lowest-direct``; ``pip install -c <this output> -e ".[dev]"`` installs the oldest
versions setup.cfg allows of what the library itself needs (torch, transformers, accelerate, safetensors),
and the newest the resolver picks of everything else.
"""

import configparser
import re
import sys

config = configparser.ConfigParser()
config.read(sys.argv[1] if len(sys.argv) > 1 else "setup.cfg")
for line in config["options"]["install_requires"].splitlines():
    line = line.split("#")[0].strip()
    if not line:
        continue
    lowest = re.match(r"([A-Za-z0-9_.\-]+)\s*(?:\[.*\])?.*?>=\s*([0-9][0-9A-Za-z.+\-]*)", line)
    if lowest is None:
        sys.exit(f"setup.cfg: {line!r} has no lower bound (>=X): declare the oldest version that is tested")
    print(f"{lowest.group(1)}=={lowest.group(2)}")
