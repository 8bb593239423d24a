"""Data: model-specific dataset classes (``dataset``); where the atomic files are and how a
missing one is converted is :mod:`recbole_session.datafiles`."""
