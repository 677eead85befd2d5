"""Choosing and creating the tf.distribute strategy a training run uses.

  auto          mirrored over all GPUs if more than one is visible, else the default strategy
  one_device    the first GPU, or the CPU
  mirrored      every visible GPU; on a machine without GPU, `cpu_replicas=N` splits the CPU
                into N logical devices and mirrors over them (for tests and demos)
  multi_worker  MultiWorkerMirroredStrategy over the cluster in the TF_CONFIG environment
                variable; every task runs the same command, the chief writes the results

Create the strategy before TensorFlow runs its first op: logical CPU devices and the
threads per op can only be configured then, and a multi-worker task must join its cluster
before anything else.
"""

import json
import os

import tensorflow as tf
from absl import logging

from mmocgan_tf.config import STRATEGIES, ConfigError

__all__ = ["ClusterError", "is_chief", "is_multi_worker", "make_strategy", "read_tf_config",
           "set_intra_op_threads"]


class ClusterError(RuntimeError):
    """The workers of a multi_worker run did not come together; the message is one line."""


def make_strategy(name="auto", cpu_replicas=0, cluster_timeout=120.0):
    """The strategy named `name` (one of config.STRATEGIES).

    Args:
      name: "auto", "one_device", "mirrored" or "multi_worker" (see the module docstring).
      cpu_replicas: with "mirrored" on a machine without GPU, the number (>= 2) of logical
        CPU devices to mirror over; 0 = off.
      cluster_timeout: seconds a multi_worker task waits for every task of TF_CONFIG to
        join before it fails.

    Raises:
      ConfigError: an unknown name, cpu_replicas where it does not apply (another strategy,
        a machine with a GPU, devices already initialised differently), or a bad TF_CONFIG.
      ClusterError: the cluster did not come together within cluster_timeout.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"strategy={name!r} must be one of {STRATEGIES}")
    if cpu_replicas and name != "mirrored":
        raise ConfigError(f"cpu_replicas={cpu_replicas} applies to --strategy=mirrored only, "
                          f"not {name}")
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        if not cpu_replicas:
            return tf.distribute.MirroredStrategy()
        if gpus:
            raise ConfigError(f"cpu_replicas={cpu_replicas} is for machines without a GPU; this "
                              f"one has {len(gpus)}: use --strategy=mirrored without it")
        return tf.distribute.MirroredStrategy(_logical_cpus(cpu_replicas))
    return _multi_worker(read_tf_config(), cluster_timeout)


def is_chief(strategy):
    """Whether this task writes the results: the chief of a cluster, or the only task."""
    cluster = _cluster(strategy)
    if not cluster:
        return True
    resolver = strategy.cluster_resolver
    return _chief(cluster) == (resolver.task_type, int(resolver.task_id or 0))


def is_multi_worker(strategy):
    """Whether `strategy` spans several tasks (processes, usually machines)."""
    return sum(len(addresses) for addresses in _cluster(strategy).values()) > 1


def _cluster(strategy):
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type is None:
        return {}
    return {job: list(tasks) for job, tasks in resolver.cluster_spec().as_dict().items()}


def read_tf_config(text=None):
    """Parses and checks TF_CONFIG (default: the environment variable).

    Returns:
      (cluster, task_type, task_index): cluster maps "chief"/"worker" to address lists.

    Raises:
      ConfigError: one line naming what is wrong: missing, not JSON, no cluster or task, an
        unknown task type, an index out of range, or an address listed twice.
    """
    if text is None:
        text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        raise ConfigError("strategy='multi_worker' needs the TF_CONFIG environment variable "
                          "(cluster and task, the same cluster on every worker)")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {err}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError('TF_CONFIG needs a "cluster" object mapping "chief"/"worker" to '
                          "address lists")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ConfigError('TF_CONFIG needs a "task" object with "type" and "index"')
    seen = {}
    for job, addresses in cluster.items():
        if job not in ("chief", "worker"):
            raise ConfigError(f"TF_CONFIG cluster job {job!r} is not supported; use chief and "
                              "worker")
        if not isinstance(addresses, list) or not addresses:
            raise ConfigError(f"TF_CONFIG cluster job {job!r} must list one or more addresses")
        if job == "chief" and len(addresses) > 1:
            raise ConfigError(f"TF_CONFIG lists {len(addresses)} chiefs; at most one is allowed")
        for index, address in enumerate(addresses):
            if address in seen:
                raise ConfigError(f"TF_CONFIG lists address {address!r} twice ({seen[address]} "
                                  f"and {job} {index}); every task needs its own host:port")
            seen[address] = f"{job} {index}"
    task_type, index = task["type"], task["index"]
    if task_type not in cluster:
        raise ConfigError(f"TF_CONFIG task type {task_type!r} is not a job of the cluster "
                          f"({', '.join(cluster)})")
    if isinstance(index, bool) or not isinstance(index, int) or not \
            0 <= index < len(cluster[task_type]):
        raise ConfigError(f"TF_CONFIG task index {index!r} is out of range for the "
                          f"{len(cluster[task_type])} {task_type} address(es)")
    return cluster, task_type, index


def _chief(cluster):
    return ("chief", 0) if "chief" in cluster else ("worker", 0)


def set_intra_op_threads(count):
    """Lets one TensorFlow op use `count` threads (0: leave TensorFlow's choice).

    Only a process that has not run TensorFlow yet can change it; one that has keeps its
    setting, with a warning: a slower run, not a wrong one.
    """
    if not count or tf.config.threading.get_intra_op_parallelism_threads() == count:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
    except RuntimeError:
        logging.warning("intra_op_threads=%d not applied: TensorFlow already runs in this "
                        "process with its own setting", count)


def _logical_cpus(count):
    """Names of `count` logical CPU devices, configuring them if TF has not started yet."""
    if count < 2:
        raise ConfigError(f"cpu_replicas={count} must be 0 (off) or >= 2")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # devices already initialised in this process
        pass
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) != count:
        raise ConfigError(f"cpu_replicas={count} needs a fresh process: TensorFlow already set "
                          f"up {len(devices)} CPU device(s) here")
    return devices


def _multi_worker(tf_config, timeout):
    cluster, task_type, index = tf_config
    this = f"{task_type} {index} at {cluster[task_type][index]}"
    bounded = _bound_cluster_wait(cluster, timeout)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as err:
        others = [f"{job} {i} at {a}" for job, addresses in cluster.items()
                  for i, a in enumerate(addresses) if (job, i) != (task_type, index)]
        waited = f"within {timeout:g} s" if bounded else "in time"
        raise ClusterError(
            f"multi_worker: {this} could not reach its cluster {waited} ({type(err).__name__}); "
            f"check that {', '.join(others) or 'every task'} started with the same TF_CONFIG "
            "and that the addresses are reachable") from None


def _bound_cluster_wait(cluster, timeout):
    """Makes joining the cluster fail after `timeout` seconds instead of waiting forever.

    TensorFlow has no public option for this: MultiWorkerMirroredStrategy waits for all
    tasks to register with its coordination service, by default for an hour on the leader.
    This sets up the same coordination service it would, with a registration barrier and a
    timeout. Returns False (and changes nothing) if those internals are unavailable.
    """
    try:
        from tensorflow.python.eager import context  # internal, see above

        ctx = context.context()
        if ctx.coordination_service is not None:  # configured by the caller: respect it
            return False
        job, index = _chief(cluster)
        ctx.configure_coordination_service(
            service_type="standalone", service_leader=f"/job:{job}/replica:0/task:{index}",
            cluster_register_timeout_in_ms=int(timeout * 1000))
        config = ctx.coordination_service
        config.cluster_register_with_barrier = True
        for name in ("chief", "worker"):
            if name in cluster:
                config.coordinated_job_list.add(name=name, num_tasks=len(cluster[name]))
        return True
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
