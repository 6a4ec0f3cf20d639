"""``python -m ats_app.simulator`` runs the simulator server."""

import sys

from ats_app.simulator.server import main

sys.exit(main())
