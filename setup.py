"""Build hook: ship the top-level ``schemas/`` and ``topics.yaml`` inside the package as ``tickwire/_data/``.

They stay at the repository top (their one true place); an installed wheel finds its copy through
``tickwire.resources``. Everything else about the build is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout itself
            return
        dest = Path(self.build_lib) / "tickwire" / "_data"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(HERE / "schemas", dest / "schemas")
        shutil.copy2(HERE / "topics.yaml", dest / "topics.yaml")


setup(cmdclass={"build_py": BuildPyWithData})
