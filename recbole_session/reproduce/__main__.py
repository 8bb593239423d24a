from recbole_session.cli import exit_with
from recbole_session.reproduce import main

exit_with(main())
