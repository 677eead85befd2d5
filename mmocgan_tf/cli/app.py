"""What every command shares: quiet TensorFlow, WARNING logs, bad input as one line.

A command module defines its flags in define_flags(), wraps its main with command(), and
its console script calls run(main, define_flags). Bad input then ends with one
`error: ...` line on stderr and exit status 2 (a cluster that does not come together: 1)
instead of a traceback; any other exception is a bug and keeps its traceback.
"""

import os

# TensorFlow reads this once, when it is imported: set it before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from absl import app as absl_app  # noqa: E402
from absl import flags, logging  # noqa: E402


def load_tensorflow_quietly():
    """Imports TensorFlow and probes its devices with stderr held aside.

    Its C++ start-up lines (oneDNN, CPU features, the CUDA probe of a machine without a
    GPU) ignore TF_CPP_MIN_LOG_LEVEL and would open every command's output; they are
    written to file descriptor 2 while TensorFlow loads, so that is where they are caught.
    If the import fails, what was held back is written out before the error.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.buffer.write(held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


load_tensorflow_quietly()

# The library's bad-input errors, by public name, and the exit status each ends with. They
# are looked up among the modules already loaded when an error is caught, so a command
# imports no part of the library (matplotlib, the serving extra) just to name its errors.
KNOWN_ERRORS = {
    "mmocgan_tf.config.ConfigError": 2,
    "mmocgan_tf.data.DataError": 2,
    "mmocgan_tf.evaluation.protocol.ProtocolError": 2,
    "mmocgan_tf.evaluation.plots.FigureDataError": 2,
    "mmocgan_tf.deploy.export.ExportError": 2,
    "mmocgan_tf.deploy.serving.ServingError": 2,
    "mmocgan_tf.training.distribute.ClusterError": 1,
    "mmocgan_tf.cli.app.BadInput": 2,
}


class BadInput(Exception):
    """A generic error (ValueError, OSError) that a command's own input checks raised."""


@contextlib.contextmanager
def bad_input(*types):
    """Inside this block, exceptions of these types are bad input, not bugs.

    Args:
      *types: exception classes raised by checks of the command's flags or files.

    Yields:
      None; an exception of one of the types leaves the block as BadInput.
    """
    try:
        yield
    except types as err:
        raise BadInput(str(err)) from err


def import_extra(module, extra):
    """Imports a module that needs an optional extra, naming the extra if it is missing.

    Args:
      module: the module's dotted name.
      extra: the setup.cfg extra that installs what it needs, e.g. "plots".

    Returns:
      The module.

    Raises:
      BadInput: the import failed (one `error:` line, not a traceback, before any work).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BadInput(f"{err}: install it with pip install 'mmocgan-tf[{extra}]'") from None


def exit_status(err):
    """The exit status a known error ends a command with; None for any other exception.

    Args:
      err: the exception that left a command's main.

    Returns:
      The status from KNOWN_ERRORS of the first class err is an instance of, or None.
    """
    for name, status in KNOWN_ERRORS.items():
        module_name, _, class_name = name.rpartition(".")
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(err, cls):
            return status
    return None


def error_line(err):
    """`error: message` on one line, whatever line breaks the message holds."""
    return "error: " + " ".join(str(err).split())


def command(main):
    """Wraps a command's main() into the main(argv) that absl.app.run calls.

    The wrapper refuses positional arguments, keeps absl logging at WARNING (app.run turns
    on INFO, where TensorFlow is chatty) and turns a known error into its one line on stderr
    and its exit status.

    Args:
      main: a function of no arguments returning the exit status.

    Returns:
      main(argv), which returns the exit status.
    """

    @functools.wraps(main)
    def wrapped(argv):
        if len(argv) > 1:
            raise absl_app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        logging.set_verbosity(logging.WARNING)
        try:
            return main()
        except KeyboardInterrupt:  # Ctrl-C: what was written stays as the command left it
            print("error: interrupted", file=sys.stderr)
            return 130
        except Exception as err:
            status = exit_status(err)
            if status is None:
                raise
            print(error_line(err), file=sys.stderr)
            return status

    return wrapped


def run(main, define_flags, flags_parser=None):
    """Runs a command the way its console script and `python -m` do; exits with its status.

    Defines the command's flags and makes them key flags of the program's main module:
    absl's --help lists only those, and under a console script or a clone entry point the
    main module is not the command's. The command's docstring becomes the usage text.

    Args:
      main: the command's main(argv), as command() returns it.
      define_flags: defines the command's flags; safe to call more than once.
      flags_parser: parses argv into the flags (default parse_flags), for a command that
        hands flags it does not know on (cli.score --runner: Beam's options).
    """
    define_flags()
    for flag in flags.FLAGS.get_key_flags_for_module(main.__module__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    sys.modules["__main__"].__doc__ = sys.modules[main.__module__].__doc__
    absl_app.run(main, flags_parser=flags_parser or parse_flags)


def parse_flags(argv):
    """absl's flag parsing, with a bad flag as one `error:` line and exit status 2.

    An unknown or malformed flag, a missing flagfile or a required flag left out is bad
    input like any other; absl's own handler would print FATAL text and exit 1.
    """
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        print(f"{error_line(err)} (--helpfull lists the flags)", file=sys.stderr)
        sys.exit(2)
