"""Package discovery for posgrade (the rest of the metadata is in pyproject.toml).

grader/ holds the `posgrade` package; exercises/ and solutions/ ship inside it as
`posgrade.exercises` and `posgrade.solutions`, so `init` and the grader find them from an
installed wheel as well as from a checkout. Packages are discovered, never listed by hand,
so a new subpackage cannot be left out of the wheel (tests/test_packaging.py checks the
built wheel against the source tree).
"""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


# -- kit manifest (issue 13; owned by the sandbox work): hashes of the files that decide verdicts --
class build_py_with_manifest(build_py):
    """build_py, then posgrade/kit_manifest.json: the SHA-256 of the built solutions, stubs, cases
    and diagnosis files, which the grader checks at the start and end of every run."""

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install checks against the run's start instead
            return
        import importlib.util
        import os

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grader", "posgrade", "kit", "manifest.py")
        spec = importlib.util.spec_from_file_location("_posgrade_manifest", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # stdlib only: no need to import the package being built
        module.write(os.path.join(self.build_lib, "posgrade"))


setup(
    cmdclass={"build_py": build_py_with_manifest},
    package_dir={"": "grader", "posgrade.exercises": "exercises", "posgrade.solutions": "solutions"},
    packages=find_packages("grader", include=["posgrade", "posgrade.*"]) + ["posgrade.exercises", "posgrade.solutions"],
)
