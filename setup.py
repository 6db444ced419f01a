"""Map the top-level viewer/, models/ and calib/ folders into the gaze3d namespace.

Everything else about the package lives in pyproject.toml. Installing these
folders under their own names would squat generic names (``models``,
``calib``) in site-packages, so each is installed as ``gaze3d.<folder>``.
"""
from setuptools import find_namespace_packages, setup

ROOMS = ("viewer", "models", "calib")
# Namespace discovery also lists the data-only folders (gaze3d/data/ign_lidarhd,
# models/checkpoints), which setuptools otherwise warns would be ignored; their
# files are declared as package data in pyproject.toml.
NOT_PACKAGES = ["*__pycache__*", "*.egg-info*"]

packages = find_namespace_packages(include=["gaze3d", "gaze3d.*"], exclude=NOT_PACKAGES)
package_dir = {"gaze3d": "gaze3d"}
for room in ROOMS:
    packages.append(f"gaze3d.{room}")
    package_dir[f"gaze3d.{room}"] = room
    for sub in find_namespace_packages(where=room, exclude=NOT_PACKAGES):
        packages.append(f"gaze3d.{room}.{sub}")
        package_dir[f"gaze3d.{room}.{sub}"] = f"{room}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
