"""Package discovery only (metadata and dependencies live in setup.cfg).

Every ``recbole_dnr.*`` package ships, found automatically; the top-level ``properties/`` folder
(the design card's layout) ships inside the wheel as ``recbole_dnr/properties``, where
``recbole_dnr.config.properties_dir`` finds it. ``tests/test_packaging.py`` checks the wheel.
"""

from setuptools import find_packages, setup

PROPERTIES = "recbole_dnr.properties"
packages = find_packages(include=["recbole_dnr", "recbole_dnr.*"])
packages += [PROPERTIES] + [f"{PROPERTIES}.{p}" for p in find_packages(where="properties")]

setup(packages=packages, package_dir={PROPERTIES: "properties"})
