"""Package discovery only (metadata and dependencies live in setup.cfg).

Every ``recbole_dnr.*`` package ships, found automatically; the top-level ``properties/`` folder
(the design card's layout) ships inside the wheel as ``recbole_dnr/properties``, and the benchmark
variants ``experiments/variants/`` as ``recbole_dnr/properties/experiments``, where
``recbole_dnr.config`` finds them. ``tests/test_packaging.py`` checks the wheel.
"""

from setuptools import find_packages, setup

PROPERTIES = "recbole_dnr.properties"
VARIANTS = PROPERTIES + ".experiments"
packages = find_packages(include=["recbole_dnr", "recbole_dnr.*"]) + [PROPERTIES, VARIANTS]

setup(packages=packages, package_dir={PROPERTIES: "properties", VARIANTS: "experiments/variants"},
      package_data={PROPERTIES: ["*.yaml", "model/*.yaml", "dataset/*.yaml"], VARIANTS: ["*.yaml"]})
