"""Map the top-level viewer/, models/ and calib/ folders into the gaze3d namespace.

Everything else about the package lives in pyproject.toml. Installing these
folders under their own names would squat generic names (``models``,
``calib``) in site-packages, so each is installed as ``gaze3d.<folder>``.
"""
from setuptools import find_packages, setup

ROOMS = ("viewer", "models", "calib")

packages = find_packages(include=["gaze3d", "gaze3d.*"])
package_dir = {"gaze3d": "gaze3d"}
for room in ROOMS:
    packages.append(f"gaze3d.{room}")
    package_dir[f"gaze3d.{room}"] = room
    for sub in find_packages(where=room):
        packages.append(f"gaze3d.{room}.{sub}")
        package_dir[f"gaze3d.{room}.{sub}"] = f"{room}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
