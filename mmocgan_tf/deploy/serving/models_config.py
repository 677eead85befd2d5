"""Writes TensorFlow Serving's models.config, to serve several exported models from one server.

One model needs no file: the container takes MODEL_NAME and serves /models/$MODEL_NAME.
Several models (or an explicit version policy) need a ModelServerConfig text proto, given
with --model_config_file; the server re-reads it every --model_config_file_poll_wait_seconds,
so it is written atomically (a temporary sibling renamed over it) and a server polling at
the wrong moment never sees half a file. It is written as text, without importing
tensorflow-serving-api, so writing a config needs only this package.

Running the official container (gRPC on 8500, REST on 8501), models exported under
saved_models/NAME/VERSION:

    # one model
    docker run --rm -p 8500:8500 -p 8501:8501 \\
      -v "$PWD/saved_models/thyroid:/models/thyroid" -e MODEL_NAME=thyroid \\
      tensorflow/serving:2.21.0

    # several models: first the config (in Python), base paths as seen in the container,
    write_models_config("saved_models/models.config",
                        {"thyroid": "/models/thyroid", "line": "/models/line"})
    # then the folder holding it and the models, mounted at /models
    docker run --rm -p 8500:8500 -p 8501:8501 -v "$PWD/saved_models:/models" \\
      tensorflow/serving:2.21.0 \\
      --model_config_file=/models/models.config --model_config_file_poll_wait_seconds=60
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from mmocgan_tf.files import atomic_write

_POLICIES = ("latest", "all")


def write_models_config(path: str | os.PathLike, models: Mapping[str, str],
                        version_policy: str | int | Sequence[int] = "latest") -> str:
    """Writes a model_config_list for TF Serving and returns the path written.

    Args:
      path: the file to write (its folder must exist), e.g. saved_models/models.config.
      models: {model name: base path}; the base path is where the server will find the
        integer version folders, so with Docker it is a path inside the container.
      version_policy: which versions the server loads, for every model: "latest" (the
        newest only, TF Serving's default), "all", an int N (the newest N) or a list of
        version numbers (exactly those).

    Raises:
      ValueError: no models, an empty name or base path, or an unknown version policy.
    """
    if not models:
        raise ValueError("models is empty; give at least one {name: base_path}")
    policy = _policy_lines(version_policy)
    lines = ["model_config_list {"]
    for name, base_path in models.items():
        if not str(name).strip() or not str(base_path).strip():
            raise ValueError(f"model name and base path must be non-empty, got "
                             f"{name!r}: {base_path!r}")
        lines += ["  config {",
                  f"    name: {_quote(str(name))}",
                  f"    base_path: {_quote(os.fspath(base_path))}",
                  '    model_platform: "tensorflow"',
                  "    model_version_policy {",
                  *(f"      {line}" for line in policy),
                  "    }",
                  "  }"]
    lines.append("}")
    text = "\n".join(lines) + "\n"

    path = os.fspath(path)
    with atomic_write(path) as f:
        f.write(text)
    return path


def _policy_lines(policy) -> list[str]:
    """The body of model_version_policy (a ServableVersionPolicy) for the given policy."""
    if isinstance(policy, str):
        if policy not in _POLICIES:
            raise ValueError(f"version_policy must be one of {_POLICIES}, an int or a list of "
                             f"versions, got {policy!r}")
        return ["latest {", "  num_versions: 1", "}"] if policy == "latest" else ["all {", "}"]
    if isinstance(policy, int) and not isinstance(policy, bool):
        if policy < 1:
            raise ValueError(f"version_policy as a number of latest versions must be >= 1, "
                             f"got {policy}")
        return ["latest {", f"  num_versions: {policy}", "}"]
    versions = list(policy)
    if not versions or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                               for v in versions):
        raise ValueError(f"specific versions must be positive integers, got {policy!r}")
    return ["specific {", *(f"  versions: {v}" for v in versions), "}"]


def _quote(text: str) -> str:
    """A text-format string literal: UTF-8 bytes with C escapes for quotes, backslashes and
    anything not printable ASCII."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
