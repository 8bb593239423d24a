"""One module per dataset recipe; each registers itself with ``@recipe(name)``."""
