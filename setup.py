"""A wheel of ecohash carries its Ansible content: roles, playbooks, templates, ansible.cfg...

Everything else is in pyproject.toml. The content lives at the repository root (the root is
the collection ecohash.site) and setuptools only packages files under cli/, so building a
wheel copies the content into the package, where ecohash.paths.project_root finds it. An
editable install copies nothing: it runs from the checkout, whose root is the content.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# The lists of what ships and where come from the package itself, so that what a wheel
# holds and what ecohash looks for cannot drift apart; paths.py imports only ecohash.errors.
sys.path.insert(0, str(ROOT / "cli"))
from ecohash.paths import COLLECTION_PATH, CONTENT, PACKAGED_COLLECTIONS  # noqa: E402

# Bytecode is the building machine's; Pulumi.<stack>.yaml is a stack's config on this
# machine (the site file's absolute path, the passphrase salt), never a product file.
NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "Pulumi.*.yaml")


class BuildWithContent(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib, "ecohash", PACKAGED_COLLECTIONS).joinpath(*COLLECTION_PATH)
        # A build directory outlives builds: a role removed from the repository must not
        # come back from the last one.
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in CONTENT:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=NOT_SHIPPED)
            else:
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithContent})
