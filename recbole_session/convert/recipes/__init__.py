"""One module per dataset family; each registers its recipe(s) with
:func:`recbole_session.convert.registry.recipe` when imported (the rule is written out in
:mod:`recbole_session.convert.registry`)."""
