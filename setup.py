"""Only what setup.cfg cannot say: `properties/` lives at the top of the repository (RecBole's
layout) and is shipped inside the package as `recbole_session.properties`, so that a plain
`pip install .` finds the yaml files at run time."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["recbole_session", "recbole_session.*"]), "recbole_session.properties"],
    package_dir={"recbole_session.properties": "properties"},
)
