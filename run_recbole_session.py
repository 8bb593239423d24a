"""Train and test a model: ``python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k``.

Any other ``--key=value`` overrides a RecBole config key, e.g. ``--epochs=1``.
"""


from recbole_session.cli import exit_with
from recbole_session.command import main

if __name__ == "__main__":
    exit_with(main())
