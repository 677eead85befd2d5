"""absl flags generated from the config dataclasses: flag name = config field name.

One definition of every knob (mmocgan_tf/config.py) serves the flags, config.json and the
MMOCGAN constructor; this module only translates between flags and dataclasses. A flag's
help is its field's whole entry in the dataclass's Attributes docstring section, and a
field with a fixed set of values lists them.
"""

import dataclasses
import re

from absl import flags

from mmocgan_tf import config
from mmocgan_tf.config import ConfigError, ModelConfig, TrainConfig

# Flags defined by the functions below belong to the command that calls them, so that its
# --help lists them as its own.
flags.disclaim_key_flags()

# The fields whose value is one of a fixed tuple of words (validated in config.py).
CHOICES = {
    "prior": config.PRIORS,
    "reference": config.REFERENCES,
    "reference_flow_base": config.FLOW_BASES,
    "code_sampling": config.CODE_SAMPLING,
    "threshold_rule": config.THRESHOLD_RULES,
    "strategy": config.STRATEGIES,
}

_ENTRY = re.compile(r"(\w+):\s*(.*)")


def attribute_help(config_class):
    """Each field's entry in the class's Attributes section, continuation lines joined.

    Args:
      config_class: a dataclass whose docstring has a Google-style Attributes section.

    Returns:
      {field name: its whole entry as one line of text}.
    """
    entries, name, indent = {}, None, None
    lines = iter((config_class.__doc__ or "").splitlines())
    for line in lines:
        if line.strip() == "Attributes:":
            break
    for line in lines:
        text = line.strip()
        depth = len(line) - len(line.lstrip())
        if not text or (indent is not None and depth < indent):
            break
        match = _ENTRY.fullmatch(text)
        if indent is None or (depth == indent and match):
            indent = depth
            name = match.group(1) if match else None
            if name:
                entries[name] = match.group(2)
        elif name:
            entries[name] += " " + text
    return entries


class _Choices(flags.EnumParser):
    """Shows the choices in --help like DEFINE_enum, but leaves refusing other words to the
    config's validation, whose one-line error (field=value must be one of ...) is what
    the commands print with exit status 2, also when main is called in-process."""

    def parse(self, argument):
        return argument


def define_choice(name, default, choices, help_text, flag_values=flags.FLAGS):
    """Defines a string flag that takes one of `choices`, listed in its help.

    Args:
      name: the flag's name.
      default: its default value.
      choices: the allowed words, shown as <a|b|c> before the help.
      help_text: what the flag does.
      flag_values: the FlagValues to define it in.
    """
    flags.DEFINE(_Choices(choices), name, default, f"<{'|'.join(choices)}>: {help_text}",
                 flag_values, serializer=flags.ArgumentSerializer())


def define_config_flags():
    """Defines one flag per field of TrainConfig and ModelConfig, with their defaults."""
    _define(TrainConfig, TrainConfig())
    define_model_flags()


def define_model_flags(exclude=()):
    """Defines one flag per field of ModelConfig (the MMOCGAN options), with defaults.

    Args:
      exclude: field names to leave out (a command that sets them itself).
    """
    _define(ModelConfig, ModelConfig(), exclude)


def _fields(config_class):
    return [f for f in dataclasses.fields(config_class) if f.name != "model"]


def _define(config_class, instance, exclude=()):
    docs = attribute_help(config_class)
    for field in _fields(config_class):
        if field.name in exclude:
            continue
        value = getattr(instance, field.name)
        doc = docs.get(field.name, field.name.replace("_", " "))
        if field.name in CHOICES:
            define_choice(field.name, value, CHOICES[field.name], doc)
        elif isinstance(value, tuple):
            flags.DEFINE_list(field.name, [str(v) for v in value], doc)
        elif isinstance(value, bool):
            flags.DEFINE_boolean(field.name, value, doc)
        elif isinstance(value, int):
            flags.DEFINE_integer(field.name, value, doc)
        elif isinstance(value, float):
            flags.DEFINE_float(field.name, value, doc)
        else:
            flags.DEFINE_string(field.name, value, doc)


def config_from_flags(flag_values=flags.FLAGS):
    """The TrainConfig that the parsed flags describe (hidden widths become ints).

    Args:
      flag_values: parsed FlagValues holding the config flags.

    Returns:
      A TrainConfig (not yet validated; training validates it).
    """
    return TrainConfig(model=ModelConfig(**_read(ModelConfig, flag_values)),
                       **_read(TrainConfig, flag_values))


def model_options_from_flags(flag_values=flags.FLAGS):
    """The ModelConfig fields whose flags were defined, as a dict of MMOCGAN options.

    Args:
      flag_values: parsed FlagValues holding some of the model flags.

    Returns:
      {field name: value} for every ModelConfig field defined as a flag.
    """
    return _read(ModelConfig, flag_values)


def _read(config_class, flag_values):
    values = {}
    for field in _fields(config_class):
        if field.name not in flag_values:
            continue
        value = flag_values[field.name].value
        if isinstance(field.default, tuple):
            value = tuple(_width(field.name, v) if field.name.endswith("_hidden") else v
                          for v in value)
        values[field.name] = value
    return values


def _width(name, text):
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} takes comma-separated integers, got {text!r}") from None
