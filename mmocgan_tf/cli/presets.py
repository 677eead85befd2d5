"""The flagfiles shipped inside the package (configs/NAME.flags), named by --config=NAME.

A pip install has no clone to point --flagfile at, so the train command's --config names
a shipped file instead. Its values apply to every flag not given on the command line or
in a --flagfile, wherever --config stands. In a clone, configs/ is a link to the same
folder, so `--flagfile=configs/NAME.flags` reads the same file.
"""

import importlib.resources

from absl import flags

from mmocgan_tf.config import ConfigError


def folder():
    """The shipped flagfiles' folder, found through the installed package."""
    return importlib.resources.files("mmocgan_tf.cli").joinpath("configs")


def names():
    """The names of the shipped flagfiles, sorted: ("demo", "paper", ...)."""
    return tuple(sorted(entry.name.removesuffix(".flags") for entry in folder().iterdir()
                        if entry.name.endswith(".flags")))


def read(name):
    """The `--flag=value` lines of one shipped flagfile, without comments and blanks.

    Args:
      name: a shipped flagfile's name, without .flags.

    Returns:
      [(flag name, value as text)] in file order.

    Raises:
      ConfigError: no shipped flagfile has this name.
    """
    if name not in names():
        raise ConfigError(f"config={name!r} must be one of {names()}")
    settings = []
    for line in folder().joinpath(f"{name}.flags").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "//")):
            flag, _, value = line.removeprefix("--").partition("=")
            settings.append((flag, value))
    return settings


def apply(name, flag_values=flags.FLAGS):
    """Sets each flag the shipped flagfile names, unless it was given otherwise.

    Args:
      name: a shipped flagfile's name, without .flags.
      flag_values: the parsed FlagValues to set them in.

    Raises:
      ConfigError: no shipped flagfile has this name, or it names an unknown flag.
    """
    for flag, value in read(name):
        if flag not in flag_values:
            raise ConfigError(f"config={name!r} sets --{flag}, which this command lacks")
        if not flag_values[flag].present:
            flag_values[flag].parse(value)
