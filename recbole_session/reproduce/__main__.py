import sys

from recbole_session.reproduce import main

sys.exit(main())
