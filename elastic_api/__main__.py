"""`python -m elastic_api` runs the command-line interface."""

from elastic_api.cli import main

raise SystemExit(main())
