"""``python -m orchestration_client server status|stop|start``: see ``_local_server._cli``."""

import sys

from ._get_client import server_settings
from ._local_server._cli import main

if __name__ == "__main__":
    sys.exit(main(server_settings=server_settings))
