import sys

from objmount.cli import main

sys.exit(main())
