"""`python -m ats_app.cli`."""

from ats_app.cli import main

raise SystemExit(main())
