"""``python -m pipeline.survey``: runs :func:`pipeline.survey.cli.main`."""

import sys

from pipeline.survey.cli import main

if __name__ == "__main__":
    sys.exit(main())
