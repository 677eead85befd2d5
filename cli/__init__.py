"""Clone entry points: `python -m cli.NAME` runs the mmocgan-NAME command.

The commands live in mmocgan_tf/cli/. TensorFlow's log level is set here because
importing any mmocgan_tf module imports TensorFlow, and it reads the level only then.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
