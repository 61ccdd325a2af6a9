"""Interrupted work resumes to the same result: the lambda sweep of `tune` (keras-tuner)
killed during a trial and rerun covers every requested value and trains the same attackers
as an uninterrupted sweep."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import keras_tuner as kt
import numpy as np
import pytest

from tfadvser.config import PROFILES
from tfadvser.experiment.tuning import OBJECTIVE, LambdaGridOracle

GRID = [1e4, 1e5, 1e6, 1e7]
RUNNING, COMPLETED = kt.engine.trial.TrialStatus.RUNNING, kt.engine.trial.TrialStatus.COMPLETED


def new_oracle(directory, lambdas=GRID):
    """As a fresh process would build it: a new oracle reloaded from the project folder."""
    oracle = LambdaGridOracle(lambdas, kt.Objective(OBJECTIVE, direction="min"))
    oracle._set_project_dir(str(directory), "sweep")
    if (directory / "sweep" / "oracle.json").exists():
        oracle.reload()
    return oracle


def finish(oracle, trial, value=0.5):
    oracle.update_trial(trial.trial_id, {OBJECTIVE: value})
    trial.status = COMPLETED
    oracle.end_trial(trial)


def lambda_of(trial):
    return trial.hyperparameters.values["lambda"]


def test_keras_tuner_grid_oracle_loses_its_walk_when_killed(tmp_path):
    """Why tuning.py has its own oracle (keras-team/keras-tuner#1055): GridSearchOracle's
    linked list of trial ids is not persisted."""
    def grid_oracle():
        hp = kt.HyperParameters()
        hp.Choice("lambda", GRID)
        oracle = kt.oracles.GridSearchOracle(objective=kt.Objective(OBJECTIVE, direction="min"),
                                             hyperparameters=hp, max_trials=4)
        oracle._set_project_dir(str(tmp_path), "sweep")
        if (tmp_path / "sweep" / "oracle.json").exists():
            oracle.reload()
        return oracle

    oracle = grid_oracle()
    finish(oracle, oracle.create_trial("t"))
    oracle.create_trial("t")  # trial 1 running: the process is killed here
    oracle = grid_oracle()
    finish(oracle, oracle.create_trial("t"))  # the retry of trial 1
    with pytest.raises(KeyError):
        oracle.create_trial("t")


def test_grid_resumes_a_killed_trial_and_then_the_rest(tmp_path):
    oracle = new_oracle(tmp_path)
    first = oracle.create_trial("t")
    assert (first.trial_id, lambda_of(first)) == ("0", 1e4)
    finish(oracle, first)
    running = oracle.create_trial("t")
    assert (running.trial_id, lambda_of(running)) == ("1", 1e5)
    # killed: a new process reloads the project twice (the first rerun is killed too)
    new_oracle(tmp_path)
    oracle = new_oracle(tmp_path)
    retried = oracle.create_trial("t")
    assert (retried.trial_id, lambda_of(retried), retried.status) == ("1", 1e5, RUNNING)
    finish(oracle, retried)
    rest = []
    while True:
        trial = oracle.create_trial("t")
        if trial.status != RUNNING:
            break
        rest.append((trial.trial_id, lambda_of(trial)))
        finish(oracle, trial)
    assert rest == [("2", 1e6), ("3", 1e7)]
    assert trial.status == kt.engine.trial.TrialStatus.STOPPED
    assert new_oracle(tmp_path).create_trial("t").status == kt.engine.trial.TrialStatus.STOPPED


def test_grid_reruns_a_trial_whose_process_died_before_the_oracle_was_saved(tmp_path):
    """The trial's own file says RUNNING but oracle.json never listed it: its value is
    still owed, so a new trial runs it instead of the sweep ending with it missing."""
    oracle = new_oracle(tmp_path)
    finish(oracle, oracle.create_trial("t"))
    state = json.loads((tmp_path / "sweep" / "oracle.json").read_text())
    oracle.create_trial("t")  # trial 1 written to disk ...
    (tmp_path / "sweep" / "oracle.json").write_text(json.dumps(state))  # ... the oracle's state not
    oracle = new_oracle(tmp_path)
    done = []
    while (trial := oracle.create_trial("t")).status == RUNNING:
        done.append((trial.trial_id, lambda_of(trial)))
        finish(oracle, trial)
    assert done == [("2", 1e5), ("3", 1e6), ("4", 1e7)]


def test_grid_rerun_with_more_values_runs_the_new_ones(tmp_path):
    oracle = new_oracle(tmp_path, [1e4, 1e7])
    while (trial := oracle.create_trial("t")).status == RUNNING:
        finish(oracle, trial)
    oracle = new_oracle(tmp_path, [1e4, 1e5, 1e7])
    trial = oracle.create_trial("t")
    assert lambda_of(trial) == 1e5
    finish(oracle, trial)
    assert oracle.create_trial("t").status == kt.engine.trial.TrialStatus.STOPPED


# --- end to end: `tfadvser tune` killed with SIGKILL in its second trial -------------------

SMOKE = PROFILES["smoke"]


def tune_command(data, run_dir):
    code = "from tfadvser_cli.main import main; main()"
    return [sys.executable, "-c", code, "tune", "--data", str(data), "--run", str(run_dir),
            "--sequence", "cnn4,vgg16", "--profile", "smoke"]


def kill_during_second_trial(data, run_dir, timeout=600):
    process = subprocess.Popen(tune_command(data, run_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    trial = run_dir / "tuning" / "cnn4-vgg16-eps0.008-snr30" / "trial_1"
    start = time.time()
    try:
        while process.poll() is None and time.time() - start < timeout:
            if trial.is_dir():
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.1)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def generators(run_dir):
    """lambda -> weights of the attacker after the sweep's last task."""
    weights = {}
    for lam in GRID:
        label = f"lifelong-cnn4-vgg16-lambda{lam:g}-eps0.008-snr30"
        record = json.loads((run_dir / "attackers" / label / "sequence.json").read_text())
        path = run_dir / record["tasks"][-1]["path"] / "generator.keras"
        weights[lam] = keras.saving.load_model(path, compile=False).get_weights()
    return weights


@pytest.mark.slow
def test_tune_killed_and_rerun_ends_as_an_uninterrupted_sweep(tiny_data, tmp_path):
    from tfadvser.attack.training import train_attacker
    from tfadvser.defence.training import train_defence

    base = tmp_path / "base"
    for name in ("cnn4", "vgg16"):
        train_defence(tiny_data, name, SMOKE, base, verbose=0)
    train_attacker(tiny_data, base, "single", ["cnn4"], SMOKE, verbose=0)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    shutil.copytree(base, clean)
    shutil.copytree(base, killed)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(tune_command(tiny_data, clean), check=True, env=env, capture_output=True)

    assert kill_during_second_trial(tiny_data, killed), "tune finished before its second trial"
    for _ in range(2):  # the field report: the first rerun crashed, the second skipped λ
        rerun = subprocess.run(tune_command(tiny_data, killed), env=env, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr[-2000:]

    expected = json.loads((clean / "tuning" / "cnn4-vgg16-eps0.008-snr30" / "best.json").read_text())
    resumed = json.loads((killed / "tuning" / "cnn4-vgg16-eps0.008-snr30" / "best.json").read_text())
    assert [t["lambda"] for t in resumed["trials"]] == GRID
    assert [t["status"] for t in resumed["trials"]] == ["COMPLETED"] * 4
    assert [t["metrics"] for t in resumed["trials"]] == [t["metrics"] for t in expected["trials"]]
    assert (resumed["lambda"], resumed["best_objective"]) == (expected["lambda"], expected["best_objective"])
    ours, theirs = generators(killed), generators(clean)
    for lam in GRID:
        for a, b in zip(ours[lam], theirs[lam]):
            np.testing.assert_array_equal(a, b)


# --- a failed trial in the same process: the next one is not poisoned by it ---------------

def test_dilated_gradient_probe_raises_its_own_error(monkeypatch):
    """The probe runs in a thread of its own; an error there reaches the caller as itself,
    not as `IndexError: list index out of range` from an empty result."""
    from tfadvser.runtime import atrous

    def broken():
        raise RuntimeError("probe broke")

    monkeypatch.setattr(atrous, "_probe", broken)
    with pytest.raises(RuntimeError, match="probe broke"):
        atrous.native_dilated_gradients.__wrapped__()
    monkeypatch.setattr(atrous, "_probe", lambda: True)
    assert atrous.native_dilated_gradients.__wrapped__() is True


@pytest.fixture(scope="module")
def first_task_run(tiny_data, tmp_path_factory):
    """CNN-4 and VGG-16 trained, and the single-task CNN-4 attacker (task 0 of cnn4,vgg16)."""
    from tfadvser.attack.training import train_attacker
    from tfadvser.defence.training import train_defence

    run_dir = tmp_path_factory.mktemp("first_task") / "run"
    for name in ("cnn4", "vgg16"):
        train_defence(tiny_data, name, SMOKE, run_dir, verbose=0)
    train_attacker(tiny_data, run_dir, "single", ["cnn4"], SMOKE, verbose=0)
    return run_dir


def test_lifelong_task_failed_while_tracing_reruns_in_the_same_process(first_task_run, tiny_data,
                                                                        tmp_path, monkeypatch):
    """A lambda trial whose task 1 raised while its train step was being traced, then rerun
    in the same process (keras-tuner's next trial, a notebook): the rerun trains the attacker
    an uninterrupted run trains. It used to fail with TensorBoard's "'Function' object has no
    attribute '_concrete_variable_creation_fn'": the compiled attacker with the half-traced
    step stayed in attack.cache and served the rerun."""
    import tensorflow as tf

    from tfadvser.attack import attacker as attacker_module
    from tfadvser.attack.training import train_attacker

    clean, failed = tmp_path / "clean", tmp_path / "failed"
    shutil.copytree(first_task_run, clean)
    shutil.copytree(first_task_run, failed)
    expected = train_attacker(tiny_data, clean, "lifelong", ["cnn4", "vgg16"], SMOKE,
                              strength=1e4, verbose=0)

    real, armed = attacker_module.inference, [True]

    def fails_once_in_a_trace(model):
        forward = real(model)

        def call(x):
            if armed and not tf.executing_eagerly():
                armed.clear()
                raise IndexError("list index out of range")
            return forward(x)
        return call

    monkeypatch.setattr(attacker_module, "inference", fails_once_in_a_trace)
    with pytest.raises(IndexError):
        train_attacker(tiny_data, failed, "lifelong", ["cnn4", "vgg16"], SMOKE, strength=1e4,
                       verbose=0)
    assert not armed
    # A distinct compiled attacker for each run directory (the defences are other objects),
    # so the rerun below meets the attacker whose trace failed, as in one `reproduce`.
    record = train_attacker(tiny_data, failed, "lifelong", ["cnn4", "vgg16"], SMOKE,
                            strength=1e4, verbose=0)
    assert [t["key"] for t in record["tasks"]] == [t["key"] for t in expected["tasks"]]
    ours = keras.saving.load_model(failed / record["tasks"][-1]["path"] / "generator.keras",
                                   compile=False).get_weights()
    theirs = keras.saving.load_model(clean / expected["tasks"][-1]["path"] / "generator.keras",
                                     compile=False).get_weights()
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


# --- failed lambdas: retried by a rerun, up to two failed attempts -------------------------

class ScriptedTuner(kt.Tuner):
    """`LambdaTuner`'s interface, with a scripted objective instead of training: `fails`
    maps a lambda to how many of its runs (over every `tune` call) raise."""

    objective = {1e4: 0.5, 1e5: 0.25, 1e7: 0.75}
    fails: dict = {}
    runs: list = []

    def __init__(self, data_dir, run_dir, sequence, profile, seed, regulariser="ewc", **kwargs):
        super().__init__(**kwargs)

    def run_trial(self, trial, *args, **kwargs):
        lam = trial.hyperparameters.get("lambda")
        ScriptedTuner.runs.append(lam)
        if ScriptedTuner.runs.count(lam) <= ScriptedTuner.fails.get(lam, 0):
            raise RuntimeError(f"bad process state at lambda {lam:g}")
        return {OBJECTIVE: self.objective[lam]}

    def save_model(self, trial_id, model, step=0):
        pass

    def load_model(self, trial):
        return None


@pytest.fixture
def scripted_tune(monkeypatch, tmp_path):
    """`tuning.tune` over the grid 1e4, 1e5, 1e7 with ScriptedTuner; returns
    call(fails) -> (best.json or the TfadvserError, lambdas run by this call)."""
    from tfadvser.errors import TfadvserError
    from tfadvser.experiment import tuning

    monkeypatch.setattr(tuning, "LambdaTuner", ScriptedTuner)
    monkeypatch.setattr(tuning, "first_task_trained", lambda *args: True)
    monkeypatch.setattr(ScriptedTuner, "runs", [])

    def call(fails):
        monkeypatch.setattr(ScriptedTuner, "fails", fails)
        before = len(ScriptedTuner.runs)
        try:
            result = tuning.tune(tmp_path / "data", tmp_path / "run", ["cnn4", "vgg16"], SMOKE,
                                 lambdas=[1e4, 1e5, 1e7])
        except TfadvserError as exc:
            result = exc
        return result, ScriptedTuner.runs[before:]
    return call


def summary(best):
    return [(t["lambda"], t["status"], t.get("attempts"), t.get("error")) for t in best["trials"]]


def test_a_lambda_that_failed_once_is_run_again_by_the_rerun(scripted_tune, tmp_path):
    best, ran = scripted_tune({1e5: 1})
    assert ran == [1e4, 1e5, 1e7]  # not retried by the run that saw it fail
    assert (best["lambda"], best["best_objective"]) == (1e4, 0.5)
    assert summary(best) == [(1e4, "COMPLETED", None, None),
                             (1e5, "FAILED", 1, "RuntimeError: bad process state at lambda 100000"),
                             (1e7, "COMPLETED", None, None)]
    best, ran = scripted_tune({1e5: 1})
    assert ran == [1e5]
    assert (best["lambda"], best["best_objective"]) == (1e5, 0.25)
    assert summary(best) == [(1e4, "COMPLETED", None, None), (1e5, "COMPLETED", None, None),
                             (1e7, "COMPLETED", None, None)]
    saved = json.loads((tmp_path / "run" / "tuning" / "cnn4-vgg16-eps0.008-snr30" / "best.json").read_text())
    assert saved["lambda"] == 1e5
    assert scripted_tune({1e5: 1})[1] == []


def test_a_lambda_that_always_fails_is_given_up_after_two_attempts(scripted_tune, tmp_path):
    error = "RuntimeError: bad process state at lambda 100000"
    for attempts, expected_runs in ((1, [1e4, 1e5, 1e7]), (2, [1e5]), (2, [])):
        best, ran = scripted_tune({1e5: 99})
        assert ran == expected_runs
        assert (best["lambda"], best["best_objective"]) == (1e4, 0.5)
        assert summary(best) == [(1e4, "COMPLETED", None, None), (1e5, "FAILED", attempts, error),
                                 (1e7, "COMPLETED", None, None)]
    saved = json.loads((tmp_path / "run" / "tuning" / "cnn4-vgg16-eps0.008-snr30" / "best.json").read_text())
    assert summary(saved)[1] == (1e5, "FAILED", 2, error)


def test_a_sweep_whose_every_lambda_fails_stops_with_each_error(scripted_tune, tmp_path):
    folder = tmp_path / "run" / "tuning" / "cnn4-vgg16-eps0.008-snr30"
    always = {1e4: 99, 1e5: 99, 1e7: 99}
    for attempts, expected_runs, advice in ((1, [1e4, 1e5, 1e7], "rerun to retry"),
                                            (2, [1e4, 1e5, 1e7], "see the trial folders there"),
                                            (2, [], "see the trial folders there")):
        error, ran = scripted_tune(always)
        assert ran == expected_runs
        assert str(error) == (
            f"every trial of {folder} failed ("
            + "; ".join(f"lambda {lam}: RuntimeError: bad process state at lambda {lam} "
                        f"({attempts} of 2 attempts)" for lam in ("10000", "100000", "1e+07"))
            + f"); {advice}")
    assert not (folder / "best.json").exists()


def test_fisher_batches_do_not_depend_on_what_the_process_did_before(first_task_run, tiny_data):
    """The Fisher of a task is estimated on the same batches whether the process trained a
    task first (an uninterrupted reproduce) or starts with it (a rerun after a kill): the
    kill-and-rerun reproduce test found task 1's Fisher, and so task 2, differing."""
    import tensorflow as tf

    from tfadvser.attack.training import _Context

    config = SMOKE.attacker
    ctx = _Context(tiny_data, first_task_run, SMOKE, config, ["cnn4", "vgg16"], verbose=0)
    orders = []
    for global_seed in (config.seed, 1234, None):
        tf.random.set_seed(global_seed)
        orders.append([tuple(np.asarray(y)) for _, y in ctx.fisher_set()])
    assert orders[0] == orders[1] == orders[2]
    assert sum(len(batch) for batch in orders[0]) == 14  # the whole training split
