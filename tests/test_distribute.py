"""tf.distribute: choosing the strategy, exact mirrored steps, and two-process clusters.

Logical CPU devices and multi-worker clusters can only be set up before TensorFlow starts,
so those checks run in fresh subprocesses. Each subprocess spends most of its time importing
TensorFlow, so the module starts them together (the `runs` fixture) and the tests then read
what each one printed or wrote. Exact comparisons with one device fix the noise (codes are
argmax Q(c|x), the prior's z a fixed function of the code, q's negatives one fixed row),
train with SGD (whose update is proportional to the gradient, so a wrong loss scale shows)
and keep the batch order (fit(shuffle=False)): see test_two_workers_train_exactly_like_one
for why the order matters.
"""

import json
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from tiny import ROOT, TINY_FLAGS

from cli import train as train_cli
from mmocgan_tf.config import ConfigError, TrainConfig
from mmocgan_tf.data import streaming
from mmocgan_tf.training import distribute
from mmocgan_tf.training import fit as training

# The noise of exact comparisons, the same on every replica and worker (see the docstring).
FIXED_NOISE = """
import keras, numpy as np, tensorflow as tf
from mmocgan_tf import MMOCGAN
from mmocgan_tf.model.references import mixtures

negative = tf.constant([0.5, -1.0, 2.0, 0.0])
mixtures.sample = lambda logits, loc, scale_tril, n, seed: tf.tile(negative[None], [n, 1])
x = np.random.default_rng(0).normal(size=(101, 4)).astype("float32") * [1, 2, 3, 4] + 5
table = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")

def make(reference_kind):
    model = MMOCGAN(num_features=4, num_modes=3, z_dim=4, d_hidden=(16, 16),
                    g_hidden=(16,), target_epochs=0, code_sampling="argmax", prior="mix",
                    reference=reference_kind)
    model.compile(d_optimizer=keras.optimizers.SGD(0.1),
                  g_optimizer=keras.optimizers.SGD(0.1))
    z_of_code = tf.constant(table)

    def sample(codes, seed):  # phi_mix = mu_c + sigma_c * z, with z a function of c
        return (tf.gather(model.prior.mu.value, codes)
                + tf.gather(model.prior.sigma.value, codes) * tf.gather(z_of_code, codes))

    model.prior.sample = sample
    return model

def trained(model):
    return model.discriminator.weights + model.generator.weights + model.prior.weights
"""

# One CPU and two logical CPUs in one process, for both variants: one epoch of 101 rows
# in batches of 100 (step 1 splits 50/50, step 2 gives one replica the last row and the
# other none). Then the seeds of replicas.replica_seeds on each replica.
STEP_SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
""") + FIXED_NOISE + textwrap.dedent("""
    from mmocgan_tf.model import replicas

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {}
    for variant in ("gmm", "none"):
        keras.utils.set_random_seed(0)
        single = make(variant)
        with strategy.scope():
            mirrored = make(variant)
        mirrored.set_weights(single.get_weights())
        before = [w.numpy() for w in trained(single)]
        logs = [m.fit(x, epochs=1, batch_size=100, shuffle=False, verbose=0).history
                for m in (single, mirrored)]
        pairs = list(zip(single.get_weights(), mirrored.get_weights()))
        out[variant] = {
            "replicas": mirrored.distribute_strategy.num_replicas_in_sync,
            "weight_diff": max(float(np.max(np.abs(a - b))) for a, b in pairs),
            "moved": min(float(np.max(np.abs(a - w.numpy())))
                         for a, w in zip(before, trained(single))),
            "log_diff": max(abs(logs[0][k][0] - logs[1][k][0]) for k in logs[0]),
            "log_types": sorted({type(v[0]).__name__ for v in logs[1].values()}),
        }

    # Two steps of noise seeds from one SeedGenerator state: mirrored, and on one device.
    with strategy.scope():
        mirrored_seeds = keras.random.SeedGenerator(7)
    single_seeds = keras.random.SeedGenerator(7)
    step = tf.function(lambda: strategy.run(
        lambda: tf.stack(replicas.replica_seeds(mirrored_seeds, 3))))
    seeds = {"single": [], "replica 0": [], "replica 1": []}
    for _ in range(2):
        per_replica = strategy.experimental_local_results(step())
        seeds["replica 0"].append(per_replica[0].numpy().tolist())
        seeds["replica 1"].append(per_replica[1].numpy().tolist())
        seeds["single"].append(tf.stack(replicas.replica_seeds(single_seeds, 3)).numpy().tolist())
    out["seeds"] = seeds
    print("RESULT " + json.dumps(out))
""")

# A worker of a two-process cluster (TF_CONFIG set) or the single-process reference:
# two epochs of 101 rows in batches of 50, each batch split 25/25 over the workers and the
# last one 1/0. Writes every weight of the model (argv[1], .npz).
WORKER_SCRIPT = textwrap.dedent("""
    import os, sys
    from mmocgan_tf.training import distribute
    import tensorflow as tf
    strategy = (distribute.make_strategy("multi_worker") if os.environ.get("TF_CONFIG")
                else tf.distribute.get_strategy())
""") + FIXED_NOISE + textwrap.dedent("""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = make("gmm")
    before = [w.numpy() for w in trained(model)]
    model.fit(x, epochs=2, batch_size=50, shuffle=False, verbose=0)
    moved = min(float(np.max(np.abs(a - w.numpy()))) for a, w in zip(before, trained(model)))
    np.savez(sys.argv[1], *model.get_weights(), moved=moved,
             replicas=strategy.num_replicas_in_sync, chief=distribute.is_chief(strategy))
""")


def run_python(*args, env=None, timeout=240):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


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


def write_data(folder, labels=True):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).round(4)
    label = (np.arange(200) % 20 == 0).astype(int)
    x[label == 1] += 4
    path = folder / ("data.csv" if labels else "normal.csv")
    rows = [",".join(str(v) for v in row) + (f",{y}" if labels else "")
            for row, y in zip(x, label, strict=True)]
    path.write_text(("a,b,c,label\n" if labels else "a,b,c\n") + "\n".join(rows) + "\n")
    return path


class Run:
    """A subprocess whose output goes to files in `folder` (no pipe can fill up and stall).

    Its TMPDIR (where a worker keeps its temporary workdir) is its own folder `tmp`.
    """

    def __init__(self, folder, name, args, env=None):
        self.stdout_path, self.stderr_path = folder / f"{name}.out", folder / f"{name}.err"
        self.tmp = folder / f"{name}.tmp"
        self.tmp.mkdir()
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, *args], cwd=ROOT, stdout=out, stderr=err, text=True,
                env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2",
                     "PYTHONUNBUFFERED": "1", "TMPDIR": str(self.tmp), **(env or {})})

    def stdout(self):
        return self.stdout_path.read_text()

    def finish(self, timeout=420):
        try:
            self.returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.returncode = "timeout"
        self.out, self.err = self.stdout(), self.stderr_path.read_text()
        return self


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every subprocess of this module at once; returns {name: finished Run} and the folder.

      steps          STEP_SCRIPT (mirrored steps and seeds)
      exact-0/1      WORKER_SCRIPT as two workers on loopback
      exact-one      WORKER_SCRIPT as one process
      cli-0/1        cli.train as two workers (TINY_FLAGS, labelled CSV)
      lost-0/1       the same, training "forever", until worker 1 is killed mid-run
      mirrored       cli.train --strategy=mirrored --cpu_replicas=2
      streaming      cli.train --streaming from a CSV of normal rows

    Meanwhile this process fits the streaming run's twin: the same model on the CSV's
    tf.data batches (streaming.Stream.batches), its final losses in twin.json.
    """
    folder = tmp_path_factory.mktemp("distribute")
    data = write_data(folder)
    flagfile = folder / "tiny.flags"
    flagfile.write_text(TINY_FLAGS + f"--data={data}\n--label_column=label\n")
    cli = ["-m", "cli.train", f"--flagfile={flagfile}"]
    started = {"steps": Run(folder, "steps", ["-c", STEP_SCRIPT]),
               "exact-one": Run(folder, "exact-one", ["-c", WORKER_SCRIPT, folder / "one.npz"])}
    clusters = {"exact": free_ports(2), "cli": free_ports(2), "lost": free_ports(2)}
    for i in range(2):
        started[f"exact-{i}"] = Run(folder, f"exact-{i}", ["-c", WORKER_SCRIPT,
                                                          folder / f"worker{i}.npz"],
                                    {"TF_CONFIG": tf_config(clusters["exact"], i)})
        started[f"cli-{i}"] = Run(folder, f"cli-{i}", [
            *cli, "--strategy=multi_worker", f"--workdir={folder / f'work{i}'}", "--verbose=2"],
            {"TF_CONFIG": tf_config(clusters["cli"], i)})
        started[f"lost-{i}"] = Run(folder, f"lost-{i}", [
            *cli, "--strategy=multi_worker", f"--workdir={folder / f'lost{i}'}", "--verbose=2",
            "--epochs=1000000"], {"TF_CONFIG": tf_config(clusters["lost"], i)})
    started["mirrored"] = Run(folder, "mirrored", [
        *cli, "--strategy=mirrored", "--cpu_replicas=2", f"--workdir={folder / 'mirrored'}"])
    normal = write_data(folder, labels=False)
    started["streaming"] = Run(folder, "streaming", [
        "-m", "cli.train", f"--data={normal}", "--streaming", "--shuffle_buffer=64",
        *TINY_FLAGS.split(), f"--workdir={folder / 'streaming'}"])
    config = TrainConfig(steps_per_execution=4)  # and the model of TINY_FLAGS:
    config.model.num_modes, config.model.z_dim, config.model.target_epochs = 3, 4, 2
    config.model.d_hidden, config.model.g_hidden = (16, 16), (16,)
    config.model.reference = "gmm"
    stream = streaming.open_stream(str(normal))
    twin = training.build_model(config, stream.feature_names)
    # As train() does: prepared on a pipeline of its own, so the training pipeline's
    # reshuffles belong to the epochs alone.
    twin.prepare(stream.batches(50, 64, config.model.seed, rows=200), batch_size=None)
    history = twin.fit(stream.batches(50, 64, config.model.seed, rows=200), epochs=2,
                       verbose=0).history
    (folder / "twin.json").write_text(json.dumps({k: v[-1] for k, v in history.items()}))

    # Worker 1 of "lost" dies once both workers are training (the chief prints epoch 2).
    deadline = time.monotonic() + 400
    while "Epoch 2/" not in started["lost-0"].stdout() and time.monotonic() < deadline:
        if started["lost-0"].process.poll() is not None:
            break
        time.sleep(0.5)
    started["lost-1"].process.kill()
    return {name: run.finish() for name, run in started.items()}, folder


def printed_result(run):
    assert run.returncode == 0, run.err[-3000:]
    return json.loads(run.out.split("RESULT ", 1)[1])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["gmm", "none"])
def test_mirrored_step_on_two_cpus_equals_the_single_device_step(runs, variant):
    """A replicated step computes exactly what one device computes.

    Compared: the weights of D, Q, G and phi_mix's mu and sigma, the standardisation and
    both thresholds, and every logged loss, after one epoch of two SGD steps (a 100-row
    batch split 50/50, then a 1-row batch split 1/0) on one CPU and mirrored over two
    logical CPUs, starting from the same weights, with the module's fixed noise.
    SGD (not Adam, whose first step is about lr * sign(gradient)) makes the comparison see
    the loss scale: an unscaled replicated loss would move the weights twice as far.
    """
    out = printed_result(runs[0]["steps"])[variant]
    assert out["replicas"] == 2
    assert out["moved"] > 1e-3, out  # every trained weight tensor did move
    assert out["weight_diff"] < 1e-5, out
    assert out["log_diff"] < 1e-5, out
    assert out["log_types"] == ["float"]  # History holds plain numbers


@pytest.mark.slow
def test_each_replica_draws_its_own_noise_and_replica_0_that_of_one_device(runs):
    """replicas.replica_seeds under MirroredStrategy over two logical CPUs, two steps.

    The SeedGenerator's state is mirrored, so without the replica id folded in both
    replicas would draw the same noise; replica 0 draws what one device draws from the same
    state, so a one-replica run is the single-device run.
    """
    seeds = printed_result(runs[0]["steps"])["seeds"]
    assert seeds["replica 0"] == seeds["single"]
    for step in range(2):
        drawn = [tuple(s) for replica in ("replica 0", "replica 1") for s in seeds[replica][step]]
        assert len(set(drawn)) == 6, seeds  # 3 seeds per replica, all different
    assert seeds["single"][0] != seeds["single"][1]  # the state moves on every step


@pytest.mark.slow
def test_two_workers_train_exactly_like_one_process(runs):
    """Two processes under MultiWorkerMirroredStrategy on 127.0.0.1 and one process alone.

    Six SGD steps from the same seeded weights with the module's fixed noise: every
    weight of both workers (networks, standardisation, reference q, thresholds) equals the
    single process's within 1e-5. The batch order is kept (shuffle=False) because Keras
    3's symbolic build under a strategy starts one pass over the dataset and drops it, so
    a distributed fit's shuffled orders are the single-device ones shifted by one epoch
    (measured: its first epoch gets the orders of the single run's second).
    """
    done, folder = runs
    for name in ("exact-one", "exact-0", "exact-1"):
        assert done[name].returncode == 0, done[name].err[-3000:]
    one, *workers = (np.load(folder / f"{name}.npz") for name in ("one", "worker0", "worker1"))
    assert int(one["replicas"]) == 1 and float(one["moved"]) > 1e-3
    weights = [k for k in one.files if k.startswith("arr_")]
    for index, worker in enumerate(workers):
        assert int(worker["replicas"]) == 2 and bool(worker["chief"]) == (index == 0)
        diff = max(float(np.max(np.abs(worker[k] - one[k]), initial=0)) for k in weights)
        assert diff < 1e-5, (index, diff)


@pytest.mark.slow
def test_two_cli_workers_on_loopback_train_and_only_the_chief_writes(runs):
    done, folder = runs
    for name in ("cli-0", "cli-1"):
        run = done[name]
        assert run.returncode == 0, run.err[-3000:]
        # Progress lines show plain numbers, not one-element arrays.
        assert re.search(r"d_loss: -?\d", run.out), run.out[-2000:]
    chief = folder / "work0"
    assert {"model.keras", "metrics.json", "config.json", "logs"} <= set(os.listdir(chief))
    assert not (folder / "work1").exists()
    assert json.loads((chief / "metrics.json").read_text())["replicas"] == 2
    assert "the chief writes the results" in done["cli-1"].out
    assert not list(done["cli-1"].tmp.iterdir())  # the worker's temporary workdir is gone


@pytest.mark.slow
def test_a_worker_that_loses_its_peer_mid_run_fails_with_one_line_and_writes_nothing(runs):
    done, folder = runs
    chief = done["lost-0"]
    assert "Epoch 2/" in chief.out, chief.err[-3000:]  # it was training when the peer died
    assert chief.returncode == 1, chief.err[-3000:]
    errors = [line for line in chief.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, chief.err[-3000:]
    assert "lost another task of the cluster during training" in errors[0]
    # Nothing is published; only the resume backup stays, so a rerun continues.
    assert not (folder / "lost0").exists() or set(os.listdir(folder / "lost0")) <= {".resume"}


@pytest.mark.slow
def test_cli_trains_mirrored_over_two_logical_cpus(runs):
    done, folder = runs
    assert done["mirrored"].returncode == 0, done["mirrored"].err[-3000:]
    metrics = json.loads((folder / "mirrored" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["strategy"] == "mirrored"
    assert metrics["chief"] and 0.0 <= metrics["eval"]["quantile"]["auroc"] <= 1.0
    assert all(np.isfinite(v) for v in metrics["final_losses"].values())


@pytest.mark.slow
def test_cli_trains_from_a_streamed_csv(runs):
    done, folder = runs
    run = done["streaming"]
    assert run.returncode == 0, run.err[-3000:]
    workdir = folder / "streaming"
    assert {"model.keras", "metrics.json", "config.json", "logs"} <= set(os.listdir(workdir))
    assert json.loads((workdir / "config.json").read_text())["streaming"] is True
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["n_train"] == 200 and metrics["feature_names"] == ["a", "b", "c"]
    assert "eval" not in metrics  # streamed rows are all normal: nothing to evaluate
    assert "trained on 200 normal rows" in run.out
    # Trained on the stream's batches: rows loaded whole would come in other orders.
    twin = json.loads((folder / "twin.json").read_text())
    assert metrics["final_losses"] == pytest.approx(twin, rel=1e-5, abs=1e-6)


@pytest.mark.slow
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


def test_intra_op_threads_apply_in_a_fresh_process_and_warn_in_a_running_one(caplog):
    script = ("import tensorflow as tf\nfrom mmocgan_tf.training import distribute\n"
              "distribute.set_intra_op_threads(1)\ntf.constant(1.0).numpy()\n"
              "print(tf.config.threading.get_intra_op_parallelism_threads())")
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert fresh.stdout.split() == ["1"]
    tf.constant(1.0).numpy()  # this process runs TensorFlow already
    running = tf.config.threading.get_intra_op_parallelism_threads()
    wanted = running + 1
    with caplog.at_level(logging.WARNING):
        distribute.set_intra_op_threads(wanted)
    assert tf.config.threading.get_intra_op_parallelism_threads() == running
    assert f"intra_op_threads={wanted} not applied" in caplog.text


def run_in_process(capsys, *args):
    flags.FLAGS.unparse_flags()
    code = train_cli.main(flags.FLAGS(["cli.train", *args]))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, env, expected", [
    (["--cpu_replicas=2"], None, "applies to strategy='mirrored' only"),
    (["--strategy=mirrored", "--cpu_replicas=1"], None, "must be 0 (off) or >= 2"),
    (["--strategy=everywhere"], None, "strategy='everywhere'"),
    (["--intra_op_threads=-1"], None, "must be >= 0"),
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
