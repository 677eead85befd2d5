"""absl flags generated from the config dataclasses: flag name = config field name.

One definition of every knob (mmocgan_tf/config.py) serves the flags, config.json and the
MMOCGAN constructor; this module only translates between flags and dataclasses.
"""

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from mmocgan_tf.config import ConfigError, ModelConfig, TrainConfig  # noqa: E402


def _fields(config_class):
    return [f for f in dataclasses.fields(config_class) if f.name != "model"]


def _help(config_class, name):
    """The field's line from the dataclass's Attributes docstring section."""
    for line in (config_class.__doc__ or "").splitlines():
        line = line.strip()
        if line.startswith(f"{name}:"):
            return line[len(name) + 1:].strip()
    return name.replace("_", " ")


def define_config_flags():
    """Defines one flag per field of TrainConfig and ModelConfig, with their defaults."""
    _define(TrainConfig, TrainConfig())
    define_model_flags()


def define_model_flags(exclude=()):
    """Defines one flag per field of ModelConfig (the MMOCGAN options), with defaults."""
    _define(ModelConfig, ModelConfig(), exclude)


def _define(config_class, instance, exclude=()):
    for field in _fields(config_class):
        if field.name in exclude:
            continue
        value = getattr(instance, field.name)
        doc = _help(config_class, field.name)
        if isinstance(value, tuple):
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
    """The TrainConfig that the parsed flags describe (hidden widths become ints)."""
    return TrainConfig(model=ModelConfig(**_read(ModelConfig, flag_values)),
                       **_read(TrainConfig, flag_values))


def model_options_from_flags(flag_values=flags.FLAGS):
    """The ModelConfig fields whose flags were defined, as a dict of MMOCGAN options."""
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
