"""Sequential (session-aware and session-based) recommenders.

Each module ``<name>.py`` holds the class whose lower-cased name is ``<name>``; the lookup in
:mod:`recbole_session.lookup` finds it by that rule, so adding a model needs no registration.
"""
