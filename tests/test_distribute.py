"""tf.distribute: choosing the strategy, exact mirrored steps, and a two-process cluster.

Logical CPU devices and multi-worker clusters can only be set up before TensorFlow starts,
so those checks run in fresh subprocesses.
"""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from sklearn.metrics import roc_auc_score
from tiny import ROOT, TINY_FLAGS

from cli import train as train_cli
from mmocgan_tf import distribute, training
from mmocgan_tf.config import ConfigError, TrainConfig

# One epoch of 101 rows in batches of 100 on one CPU and mirrored over two logical CPUs:
# step 1 splits 50/50, step 2 gives one replica the last row and the other none.
STEP_SCRIPT = textwrap.dedent("""
    import json, os
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from mmocgan_tf import MMOCGAN, reference

    # Negatives of q: one fixed row repeated, so the global batch of negatives is the same
    # whether one device draws 100 or two replicas draw 50 each.
    negative = tf.constant([0.5, -1.0, 2.0, 0.0])
    reference.sample = lambda logits, loc, scale_tril, n, seed: tf.tile(negative[None], [n, 1])

    x = np.random.default_rng(0).normal(size=(101, 4)).astype("float32") * [1, 2, 3, 4] + 5
    table = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")

    def make():
        model = MMOCGAN(num_features=4, num_modes=3, z_dim=4, d_hidden=(16, 16),
                        g_hidden=(16,), target_epochs=0, code_sampling="argmax", prior="mix",
                        reference=os.environ["REFERENCE"])
        model.compile(d_optimizer=keras.optimizers.SGD(0.1),
                      g_optimizer=keras.optimizers.SGD(0.1))
        z_of_code = tf.constant(table)

        def sample(codes, seed):  # phi_mix = mu_c + sigma_c * z, with z a function of c
            return (tf.gather(model.prior.mu.value, codes)
                    + tf.gather(model.prior.sigma.value, codes) * tf.gather(z_of_code, codes))

        model.prior.sample = sample
        return model

    keras.utils.set_random_seed(0)
    single = make()
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        mirrored = make()
    mirrored.set_weights(single.get_weights())
    trained = single.discriminator.weights + single.generator.weights + single.prior.weights
    before = [w.numpy() for w in trained]
    logs = [m.fit(x, epochs=1, batch_size=100, shuffle=False, verbose=0).history
            for m in (single, mirrored)]
    pairs = list(zip(single.get_weights(), mirrored.get_weights()))
    out = {
        "replicas": mirrored.distribute_strategy.num_replicas_in_sync,
        "weight_diff": max(float(np.max(np.abs(a - b))) for a, b in pairs),
        "moved": min(float(np.max(np.abs(a - w.numpy()))) for a, w in zip(before, trained)),
        "log_diff": max(abs(logs[0][k][0] - logs[1][k][0]) for k in logs[0]),
        "log_types": sorted({type(v[0]).__name__ for v in logs[1].values()}),
    }
    print("RESULT " + json.dumps(out))
""")


def run_python(*args, env=None, timeout=240):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("variant", ["gmm", "none"])
def test_mirrored_step_on_two_cpus_equals_the_single_device_step(variant):
    """A replicated step computes exactly what one device computes.

    Compared: the weights of D, Q, G and phi_mix's mu and sigma, the standardisation and
    both thresholds, and every logged loss, after one epoch of two SGD steps (a 100-row
    batch split 50/50, then a 1-row batch split 1/0) on one CPU and mirrored over two
    logical CPUs, starting from the same weights. The noise is made identical on both:
    codes are argmax Q(c|x) (code_sampling="argmax") and the prior's z is a fixed function
    of the code instead of a random draw (phi_mix still maps it through mu_c + sigma_c z),
    and the default variant's negatives from q are one fixed row.
    SGD (not Adam, whose first step is about lr * sign(gradient)) makes the comparison see
    the loss scale: an unscaled replicated loss would move the weights twice as far.
    """
    result = run_python("-c", STEP_SCRIPT, env={"REFERENCE": variant})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert out["replicas"] == 2
    assert out["moved"] > 1e-3, out  # every trained weight tensor did move
    assert out["weight_diff"] < 1e-5, out
    assert out["log_diff"] < 1e-5, out
    assert out["log_types"] == ["float"]  # History holds plain numbers


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def write_data(folder):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).round(4)
    labels = (np.arange(200) % 20 == 0).astype(int)
    x[labels == 1] += 4
    path = folder / "data.csv"
    path.write_text("a,b,c,label\n" + "".join(
        ",".join(str(v) for v in row) + f",{label}\n" for row, label in zip(x, labels,
                                                                            strict=True)))
    return path


def test_two_workers_on_loopback_train_like_one_and_only_the_chief_writes(tmp_path):
    data = write_data(tmp_path)
    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text(TINY_FLAGS + f"--data={data}\n--label_column=label\n")
    ports = free_ports(2)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "cli.train", f"--flagfile={flagfile}",
             "--strategy=multi_worker", f"--workdir={tmp_path / f'work{i}'}", "--verbose=2"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2",
                 "TF_CONFIG": tf_config(ports, i)})
        for i in range(2)]
    # The single-worker reference trains here meanwhile (same data, flags and seed).
    config = TrainConfig(data=str(data), label_column="label", workdir=str(tmp_path / "one"),
                         epochs=2, batch_size=50, steps_per_execution=4, verbose=0)
    config.model.num_modes, config.model.z_dim, config.model.target_epochs = 3, 4, 2
    config.model.d_hidden, config.model.g_hidden = (16, 16), (16,)
    training.train(config)
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
        # Progress lines show plain numbers, not one-element arrays.
        assert re.search(r"d_loss: -?\d", stdout), stdout[-2000:]
    chief = tmp_path / "work0"
    assert {"model.keras", "metrics.json", "config.json", "logs"} <= set(os.listdir(chief))
    assert not (tmp_path / "work1").exists()
    assert json.loads((chief / "metrics.json").read_text())["replicas"] == 2
    assert "the chief writes the results" in outputs[1][0]

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3)).astype("float32")
    y = (np.arange(400) < 40).astype(int)
    x[y == 1] += 4
    scores = [keras.saving.load_model(str(folder / "model.keras")).predict(x, verbose=0)["score"]
              for folder in (chief, tmp_path / "one")]
    assert np.corrcoef(*scores)[0, 1] > 0.9
    assert abs(roc_auc_score(y, scores[0]) - roc_auc_score(y, scores[1])) < 0.2


def test_a_worker_whose_cluster_never_forms_fails_with_one_line_after_the_timeout(tmp_path):
    start = time.perf_counter()
    result = run_python(
        "-m", "cli.train", "--data=synthetic:production_line", "--strategy=multi_worker",
        "--cluster_timeout=3", f"--workdir={tmp_path / 'work'}",
        env={"TF_CONFIG": tf_config(free_ports(2), 0)}, timeout=120)
    assert result.returncode == 1
    assert time.perf_counter() - start < 100
    # TensorFlow's C++ runtime logs its own lines around ours.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "worker 0" in errors[0] and "within 3 s" in errors[0] and "worker 1" in errors[0]
    assert not (tmp_path / "work").exists()


# ------------------------------------------------------------- choosing the strategy


def test_auto_on_a_machine_without_gpus_is_the_default_strategy():
    strategy = distribute.make_strategy("auto")
    assert strategy is tf.distribute.get_strategy()
    assert distribute.is_chief(strategy) and not distribute.is_multi_worker(strategy)


def test_one_device_places_on_the_cpu():
    strategy = distribute.make_strategy("one_device")
    assert strategy.num_replicas_in_sync == 1 and "CPU" in strategy.extended.worker_devices[0]


@pytest.mark.parametrize("text, expected", [
    ("", "needs the TF_CONFIG"),
    ("{'cluster': 1}", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', '"cluster"'),
    ('{"cluster": {"worker": ["h:1"]}}', '"task"'),
    ('{"cluster": {"worker": ["h:1", "h:1"]}, "task": {"type": "worker", "index": 1}}',
     "'h:1' twice"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
     "out of range"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}',
     "not a job"),
    ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', "not supported"),
])
def test_bad_tf_config_is_a_one_line_config_error(text, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)) as err:
        distribute.read_tf_config(text)
    assert "\n" not in str(err.value)


def test_good_tf_config_names_the_task():
    cluster, task, index = distribute.read_tf_config(
        '{"cluster": {"chief": ["h:0"], "worker": ["h:1", "h:2"]}, '
        '"task": {"type": "worker", "index": 1}}')
    assert (task, index) == ("worker", 1) and cluster["worker"] == ["h:1", "h:2"]


def test_cpu_replicas_with_a_gpu_present_is_refused(monkeypatch):
    real = tf.config.list_physical_devices
    fake_gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [fake_gpu] if kind == "GPU" else real(kind))
    with pytest.raises(ConfigError, match="without a GPU"):
        distribute.make_strategy("mirrored", cpu_replicas=2)


def test_cpu_replicas_after_tensorflow_started_is_refused():
    tf.constant(1.0).numpy()  # make sure this process's devices are initialised
    if len(tf.config.list_logical_devices("CPU")) == 2:
        pytest.skip("this process already has two logical CPUs")
    with pytest.raises(ConfigError, match="fresh process"):
        distribute.make_strategy("mirrored", cpu_replicas=2)


def run_in_process(capsys, *args):
    flags.FLAGS.unparse_flags()
    code = train_cli.main(flags.FLAGS(["cli.train", *args]))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, env, expected", [
    (["--cpu_replicas=2"], None, "applies to strategy='mirrored' only"),
    (["--strategy=mirrored", "--cpu_replicas=1"], None, "must be 0 (off) or >= 2"),
    (["--strategy=everywhere"], None, "strategy='everywhere'"),
    (["--strategy=multi_worker"], "{not json", "TF_CONFIG is not valid JSON"),
    (["--strategy=multi_worker"],
     '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}', "out of range"),
])
def test_cli_refuses_bad_distribution_settings_with_one_line(args, env, expected, tmp_path,
                                                             capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if env is not None:
        monkeypatch.setenv("TF_CONFIG", env)
    code, err = run_in_process(capsys, "--data=synthetic:production_line",
                               f"--workdir={tmp_path / 'work'}", *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert expected in lines[0]
    assert not (tmp_path / "work").exists()
