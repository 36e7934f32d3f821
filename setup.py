"""deqff: deep-equilibrium machine-learning force fields with warm-started fixed points for MD."""

from setuptools import find_packages, setup

setup(
    name="deqff",
    version="0.1.0",
    description="Deep-equilibrium equivariant force fields that reuse the previous MD step's fixed point",
    package_dir={"": "python"},
    packages=find_packages("python"),
    python_requires=">=3.10",
    entry_points={
        "console_scripts": ["deqff = deqff.cli:main"],
        "openmmml.potentials": ["deqff = deqff.md.openmmml:DeqffPotentialImplFactory"],
    },
)
