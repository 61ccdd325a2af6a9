"""Scaling out with TensorFlow's own distribution engine (`tf.distribute`).

    default      whatever strategy is current: one device, no replicas
    mirrored     MirroredStrategy over this machine's GPUs, or its logical CPU devices
    multiworker  MultiWorkerMirroredStrategy over the machines of TF_CONFIG

Losses are reduced with the *global* batch: each replica's loss is its share of the loss
of the whole batch, so that the replicas' gradients, which the optimizer sums, add up to
the one-device gradient (see `global_batch_size`). Under `multiworker`, only the chief
writes into the run folder; every other worker keeps its own copy of the run under
`<run>/workers/worker-<index>/` (`worker_run_dir`), so that two workers sharing a disk never
write the same file and each can resume on its own.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import tensorflow as tf

from tfadvser.config import STRATEGIES
from tfadvser.errors import TfadvserError



def parse_tf_config(text: str | None = None) -> dict:
    """TF_CONFIG checked against what MultiWorkerMirroredStrategy needs, with readable errors."""
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        raise TfadvserError(
            "--strategy multiworker needs TF_CONFIG, e.g. TF_CONFIG='{\"cluster\": {\"worker\": "
            "[\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}'")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TfadvserError(f"TF_CONFIG is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise TfadvserError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise TfadvserError("TF_CONFIG has no 'cluster' object (job name -> list of host:port)")
    for job, hosts in cluster.items():
        if job not in ("chief", "worker"):
            raise TfadvserError(f"TF_CONFIG cluster job {job!r}: MultiWorkerMirroredStrategy "
                                "knows only 'chief' and 'worker'")
        if (not isinstance(hosts, list) or not hosts
                or not all(isinstance(h, str) and h.rpartition(":")[2].isdigit() for h in hosts)):
            raise TfadvserError(f"TF_CONFIG cluster job {job!r} must list 'host:port' strings, "
                                f"got {hosts!r}")
    if len(cluster.get("chief", [])) > 1:
        raise TfadvserError("TF_CONFIG may name one chief at most")
    if not isinstance(task, dict):
        raise TfadvserError("TF_CONFIG has no 'task' object ({'type': ..., 'index': ...})")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise TfadvserError(f"TF_CONFIG task type {kind!r} is not a job of the cluster "
                            f"({', '.join(cluster)})")
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise TfadvserError(f"TF_CONFIG task index {index!r} is out of range for job {kind!r} "
                            f"({len(cluster[kind])} host(s))")
    return config


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name`. Create it first thing: MultiWorkerMirroredStrategy must
    exist before TensorFlow runs any op, and logical devices cannot change afterwards."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if not tf.config.list_physical_devices("GPU"):
            split_cpu(os.environ.get("TFADVSER_CPU_DEVICES", "1"))
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        parse_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TfadvserError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def split_cpu(count) -> None:
    """Present the CPU as `count` logical devices (for MirroredStrategy without GPUs, and
    to test it); must run before TensorFlow initialises its devices."""
    text = str(count)
    count = int(text) if text.strip().isdigit() else 0
    if count < 1:
        raise TfadvserError(f"TFADVSER_CPU_DEVICES must be a positive whole number, got {text!r}")
    if count == 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise TfadvserError("TFADVSER_CPU_DEVICES came too late: TensorFlow had already "
                                "set up its devices") from None


def current() -> tf.distribute.Strategy:
    """The strategy whose scope is active (TensorFlow's default one outside any scope)."""
    return tf.distribute.get_strategy()


def replicas() -> int:
    """Replicas in sync under the current strategy (1 on one device)."""
    return current().num_replicas_in_sync


def worker() -> tuple[int, int]:
    """(this worker's index among all workers, number of workers); (0, 1) off multiworker."""
    resolver = getattr(current(), "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0, 1
    spec = resolver.cluster_spec().as_dict()
    jobs = [job for job in ("chief", "worker") if job in spec]
    order = [(job, i) for job in jobs for i in range(len(spec[job]))]
    return order.index((resolver.task_type, resolver.task_id)), len(order)


def worker_run_dir(run_dir) -> Path:
    """Where this worker keeps the run: the run folder itself on the chief (and off
    multiworker), `<run>/workers/worker-<index>/` on every other worker. A new worker copy
    starts with the run's binding and its finished defences, so that an attacker can be
    trained multi-worker against defences trained before."""
    run_dir = Path(run_dir)
    index, _ = worker()
    if index == 0:
        return run_dir
    own = run_dir / "workers" / f"worker-{index}"
    if run_dir.parent.name == "workers" and run_dir.name == own.name:
        return run_dir  # mapped already (reproduce -> train_defence)
    if not own.exists():
        tmp = own.with_name(f".{own.name}.tmp")  # renamed when complete
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if (run_dir / "run.json").exists():
            shutil.copy2(run_dir / "run.json", tmp / "run.json")
        for done in sorted(run_dir.glob("defences/*/results.json")):
            shutil.copytree(done.parent, tmp / "defences" / done.parent.name,
                            ignore=shutil.ignore_patterns("backup", "logs"))
        tmp.rename(own)
    return own


def global_batch_size(local_batch) -> tf.Tensor:
    """The number of examples in this step over all replicas, as float32; the local batch
    itself outside a replica context or with one replica."""
    local = tf.cast(local_batch, tf.float32)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return local
    return context.all_reduce(tf.distribute.ReduceOp.SUM, local)


def sum_over_replicas(values):
    """Sum a (nest of) replica-local tensors over the replicas; identity on one device."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)


def max_over_replicas(value: tf.Tensor) -> tf.Tensor:
    """The maximum of a replica-local scalar over the replicas; identity on one device."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return tf.reduce_max(context.all_gather(tf.reshape(value, [1]), axis=0))


def synchronized_batch_norm() -> bool:
    """BatchNorm layers built now use statistics of the global batch when there are several
    replicas, so that training matches one device on the same global batch."""
    return replicas() > 1


def shard_policy(n_files: int, finite: bool) -> tf.data.experimental.AutoShardPolicy:
    """By file when every worker gets a file and the stream is endless; by data otherwise:
    a finite pass (dev, Fisher) must give every worker the same number of batches, or the
    collective ops of the last step would wait forever."""
    _, workers = worker()
    if not finite and n_files >= workers:
        return tf.data.experimental.AutoShardPolicy.FILE
    return tf.data.experimental.AutoShardPolicy.DATA


class ReplicaConsistentModel:
    """Mixin for the models tfadvser fits under a strategy (defence trainer, attacker).

    Their steps return the values of the global batch, the same on every replica, through
    `step_logs`. Keras 3.5 reduces multi-worker step results with a mean over axis 0,
    which fails for scalars; as 1-element vectors they reduce to the scalar itself.

    They are built before `fit`: under a strategy, Keras 3.5's `fit` takes the first
    batch from the training iterator to build the model symbolically even when it is built
    already, so a distributed run would skip a batch that one device trains on. A built
    model only needs its optimizer.
    """

    def step_logs(self, logs: dict) -> dict:
        """A train/test step's logs, shaped [1] under multi-worker (see the class)."""
        if worker()[1] > 1:
            return {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if not self.built:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
