"""The one packaging fact pyproject.toml cannot state: the package list is found *and* extended.

The repository keeps the shipped zoo and the default configs in top-level folders
(``checkpoints/``, ``configs/``); a wheel carries them inside the package as the data-only
packages ``surrogates._zoo`` and ``surrogates._configs`` (their folders are mapped in
pyproject.toml's ``package-dir``, their files chosen by its ``package-data``), which
`surrogates.resources` looks for first.
"""

from setuptools import find_namespace_packages, find_packages, setup

DATA = {"surrogates._zoo": "checkpoints", "surrogates._configs": "configs"}


def data_packages(name: str, folder: str) -> list[str]:
    """``name`` and one package per sub-folder (``surrogates._configs.inverse``, ...)."""
    return [name, *(f"{name}.{sub}" for sub in find_namespace_packages(where=folder))]


setup(
    packages=[
        *find_packages(include=["surrogates", "surrogates.*", "inverse", "inverse.*"]),
        *(package for name, folder in DATA.items() for package in data_packages(name, folder)),
    ]
)
