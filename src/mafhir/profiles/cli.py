"""``mafhir ig add FILE.tgz`` and ``mafhir ig list``: the FHIR packages the validator knows."""

from __future__ import annotations

import sys

import click

from ..errors import InputError
from .packages import cache_dir
from .validator import install_package, installed_packages

__all__ = ["ig_group"]


@click.group("ig")
def ig_group() -> None:
    """FHIR packages (implementation guides) for `mafhir validate`."""


@ig_group.command("add")
@click.argument("tgz", type=click.Path(exists=True, dir_okay=False))
def ig_add(tgz: str) -> None:
    """Install a package.tgz into the FHIR package cache ($MAFHIR_FHIR_PACKAGES, default
    ~/.fhir/packages) and compile it for the validator."""
    try:
        compiled = install_package(tgz)
    except InputError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    click.echo(f"installed {compiled['name']}@{compiled['version']}: "
               f"{len(compiled['structures'])} structure definitions, "
               f"{len(compiled['valuesets'])} value sets ({cache_dir()})")


@ig_group.command("list")
def ig_list() -> None:
    """The packages the validator uses (shipped with mafhir, or added)."""
    for package in installed_packages():
        profiles = sum(1 for s in package["structures"].values()
                       if s["derivation"] == "constraint")
        click.echo(f"{package['name']}@{package['version']}\t{profiles} profiles and extensions, "
                   f"{len(package['valuesets'])} value sets")
