"""The commands as a package: console scripts, --help, flag help, shipped flagfiles, errors.

The --help runs are subprocesses (absl prints help and exits); everything else runs in
this process on the definitions themselves.
"""

import configparser
import dataclasses
import importlib
import importlib.resources
import os
import subprocess
import sys

import pytest
from absl import app as absl_app
from absl import flags
from tiny import ROOT, finish, start_module

from cli import train as train_cli
from mmocgan_tf import config
from mmocgan_tf.cli import app, presets
from mmocgan_tf.cli import flags as config_flags

COMMANDS = ("train", "evaluate", "benchmark", "export", "score", "predict", "plot")

# What a console script's generated wrapper does: its own module is __main__.
CONSOLE_SCRIPT = ("import sys; from mmocgan_tf.cli.train import run; "
                  "sys.argv[0] = 'mmocgan-train'; run()")


def console_scripts():
    """{script name: "module:function"} from setup.cfg's entry points."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"))
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


@pytest.fixture(scope="module")
def help_texts():
    """stdout of train's --help run as a console script, and of its --helpfull."""
    console = subprocess.Popen([sys.executable, "-c", CONSOLE_SCRIPT, "--help"], cwd=ROOT,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs = {"help": console,
             "helpfull": start_module("mmocgan_tf.cli.train", "--helpfull")}
    results = {name: finish(proc) for name, proc in procs.items()}
    for result in results.values():  # absl exits with status 1 after printing help
        assert "flags:" in result.stdout, result.stderr[-2000:]
    return {name: result.stdout for name, result in results.items()}


def test_every_console_script_resolves_to_a_callable():
    scripts = console_scripts()
    assert set(scripts) == {f"mmocgan-{name}" for name in COMMANDS}
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert module == f"mmocgan_tf.cli.{name.removeprefix('mmocgan-')}"
        # Importing every command in one process is fine: flags are defined when one runs.
        assert callable(getattr(importlib.import_module(module), function))


def test_help_lists_the_commands_main_flags_with_choices(help_texts):
    text = help_texts["help"]
    assert text.startswith("Trains MMOC-GAN")
    for flag in ("--workdir", "--data", "--epochs", "--config", "--prior"):
        assert f"\n  {flag}:" in text
    assert "--prior: <cat|mix>:" in text and "--config: <demo|paper>:" in text


def test_helpfull_shows_a_fields_whole_docstring_entry(help_texts):
    entry = config_flags.attribute_help(config.ModelConfig)["reference"]
    assert entry.endswith('"none" is the paper\'s method (score 1 - D(x)).')  # its 5th line
    assert " ".join(entry.split()) in " ".join(help_texts["helpfull"].split())


def test_every_config_field_has_help_and_every_choice_tuple_is_a_choice_flag():
    for config_class in (config.ModelConfig, config.TrainConfig):
        docs = config_flags.attribute_help(config_class)
        assert {f.name for f in dataclasses.fields(config_class)} <= set(docs)
    tuples = {v for v in vars(config).values() if isinstance(v, tuple)}
    assert set(config_flags.CHOICES.values()) == tuples
    for name, choices in config_flags.CHOICES.items():
        assert flags.FLAGS[name].parser.enum_values == list(choices)


def test_a_bad_choice_is_the_configs_one_line_error(capsys, tmp_path):
    flags.FLAGS.unparse_flags()
    code = train_cli.main(flags.FLAGS(["cli.train", "--reference=gauss",
                                       "--data=synthetic:production_line",
                                       f"--workdir={tmp_path}"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: reference='gauss' must be one of ('none', 'gmm'")


def test_shipped_flagfiles_come_from_the_package_and_the_clone_path_is_the_same_file():
    package = os.path.dirname(importlib.import_module("mmocgan_tf.cli").__file__)
    assert {"demo", "paper"} <= set(presets.names())
    for name in ("demo", "paper"):
        shipped = importlib.resources.files("mmocgan_tf.cli").joinpath(f"configs/{name}.flags")
        assert shipped.is_file() and str(shipped).startswith(package + os.sep)
        assert os.path.samefile(shipped, os.path.join(ROOT, "configs", f"{name}.flags"))
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"))
    assert parser["options.package_data"]["mmocgan_tf.cli"] == "configs/*.flags"


def test_the_demo_flagfile_states_the_no_flag_default_job():
    defaults = {**dataclasses.asdict(config.TrainConfig()), **dataclasses.asdict(
        config.ModelConfig())}
    for flag, value in presets.read("demo"):
        assert type(defaults[flag])(value) == defaults[flag], flag


def test_config_sets_what_the_command_line_does_not(capsys):
    try:
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["cli.train", "--epochs=3", "--config=paper"])
        presets.apply(flags.FLAGS.config)
        paper = config_flags.config_from_flags().validate()
        assert (paper.epochs, paper.workdir, paper.model.reference) == (3, "runs/paper", "none")
    finally:
        flags.FLAGS.unparse_flags()
    code = train_cli.main(flags.FLAGS(["cli.train", "--config=nope"]))
    assert code == 2
    assert capsys.readouterr().err.startswith("error: config='nope' must be one of ('demo'")
    flags.FLAGS.unparse_flags()


def test_every_known_error_name_is_an_exception_class():
    for name in app.KNOWN_ERRORS:
        module, _, cls = name.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), cls), Exception), name


def failing(exception):
    @app.command
    def main():
        raise exception

    return main


@pytest.mark.parametrize("exception, status", [
    (config.ConfigError("epochs=0 must be >= 1"), 2),
    (importlib.import_module("mmocgan_tf.training.distribute").ClusterError("lost\ntask"), 1),
])
def test_a_known_error_is_one_line_and_its_status(exception, status, capsys):
    assert failing(exception)(["cmd"]) == status
    err = capsys.readouterr().err
    assert err == f"error: {' '.join(str(exception).split())}\n"


@pytest.mark.parametrize("argv, message", [
    (["--no_such_flag=1"], "no_such_flag"),
    (["--epochs=abc"], "--epochs=abc"),
    (["--flagfile=no_such.flags"], "no_such.flags"),
])
def test_a_bad_flag_is_one_error_line_and_exit_2(argv, message, capsys):
    train_cli.define_flags()
    with pytest.raises(SystemExit) as stopped:
        app.parse_flags(["mmocgan-train", *argv])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_ctrl_c_is_one_line_and_status_130(capsys):
    def main():
        raise KeyboardInterrupt

    assert app.command(main)(["mmocgan-train"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_generic_errors_are_bad_input_only_inside_bad_input(capsys):
    @app.command
    def main():
        with app.bad_input(OSError):
            open(os.path.join(ROOT, "no such file"))

    assert main(["cmd"]) == 2
    assert capsys.readouterr().err.startswith("error: [Errno 2] No such file")
    with pytest.raises(ValueError, match="a bug"):
        failing(ValueError("a bug"))(["cmd"])
    with pytest.raises(absl_app.UsageError, match="unexpected arguments: extra"):
        failing(ValueError())(["cmd", "extra"])


def test_a_missing_extra_is_bad_input_naming_the_extra():
    with pytest.raises(app.BadInput, match=r"pip install 'mmocgan-tf\[plots\]'"):
        app.import_extra("mmocgan_tf.no_such_module", "plots")
