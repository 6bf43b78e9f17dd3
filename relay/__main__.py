import sys

from relay.entry import main

sys.exit(main())
