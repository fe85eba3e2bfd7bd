import sys

from tempo.cli.main import main

sys.exit(main())
