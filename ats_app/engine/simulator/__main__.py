"""``python -m ats_app.engine.simulator`` runs the simulator server."""

import sys

from ats_app.engine.simulator.server import main

sys.exit(main())
