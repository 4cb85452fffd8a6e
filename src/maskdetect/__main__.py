import sys

from maskdetect.cli import main

sys.exit(main())
