"""AttackerConfig refuses every out-of-range value with a message naming the field (the tail
of its checks once sat after an unrelated `return` and never ran)."""
import pytest

from tfadvser.config import PROFILES, AttackerConfig, Budget, resolve


@pytest.mark.parametrize("field, value, message", [
    ("fisher_clips", 0, "fisher_clips must be positive"),
    ("fisher_clips", -3, "fisher_clips must be positive"),
    ("online_ewc_gamma", 2.0, r"online_ewc_gamma must be in \[0, 1\]"),
    ("online_ewc_gamma", -0.1, r"online_ewc_gamma must be in \[0, 1\]"),
    ("si_damping", 0.0, "si_damping must be positive"),
    ("si_damping", -1e-3, "si_damping must be positive"),
    ("alpha", 1.5, r"alpha must be in \[0, 1\]"),
    ("epsilon", 0.0, "epsilon must be a positive number"),
    ("snr_db", float("inf"), "snr_db must be a finite number"),
    ("lr_schedule", "cosine", "lr_schedule must be one of"),
    ("cw_reduction", "max", "cw_reduction must be one of"),
    ("fisher_mode", "diag", "fisher_mode must be one of"),
    ("perturbation", "gaussian", "perturbation must be one of"),
    ("generator", "unet", "generator must be one of"),
])
def test_attacker_config_rejects(field, value, message):
    with pytest.raises(ValueError, match=message):
        AttackerConfig(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("fisher_clips", 1), ("fisher_clips", None), ("online_ewc_gamma", 0.0),
    ("online_ewc_gamma", 1.0), ("si_damping", 1e-9)])
def test_attacker_config_accepts_the_edges(field, value):
    assert getattr(AttackerConfig(**{field: value}), field) == value


def test_every_profile_is_valid():
    for profile in PROFILES.values():
        assert isinstance(profile.attacker, AttackerConfig)


def test_long_profile_trains_attackers_in_a_small_run_only(tmp_path):
    """`long` shares `small`'s defences: its attackers may join a small run; its defences
    (or attackers of another profile) may not."""
    import types

    from tfadvser.config import get_profile
    from tfadvser.data.folder import FeatureConfig
    from tfadvser.errors import TfadvserError
    from tfadvser.runs import bind_run

    data = types.SimpleNamespace(path=tmp_path, fingerprint="f" * 64, labels=["a", "b"],
                                 feature_config=FeatureConfig())
    small, long_, smoke = (get_profile(n) for n in ("small", "long", "smoke"))
    assert long_.defence == small.defence and long_.attacker.width == 0.25
    bind_run(tmp_path, data, small)
    assert bind_run(tmp_path, data, long_, attacker=True)["profile"] == "small"
    with pytest.raises(TfadvserError, match="profile 'small', not 'long'"):
        bind_run(tmp_path, data, long_)  # training a defence
    with pytest.raises(TfadvserError, match="profile 'small', not 'smoke'"):
        bind_run(tmp_path, data, smoke, attacker=True)


def test_resolve_derives_the_attacker_from_profile_budget_and_overrides():
    small = PROFILES["small"]
    assert resolve(small) == small.attacker
    paper = resolve(small, Budget())  # the paper's unbounded perturbation, bounds left as they were
    assert (paper.perturbation, paper.epsilon, paper.snr_db) == ("paper", 0.008, 30.0)
    assert paper.budget == Budget(None, None)
    only_eps = resolve(small, Budget(0.02), seed=3, generator="universal")
    assert (only_eps.perturbation, only_eps.epsilon, only_eps.snr_db) == ("bounded", 0.02, None)
    assert (only_eps.seed, only_eps.generator, only_eps.width) == (3, "universal", 0.125)
    assert Budget.default() == Budget(0.008, 30.0) == small.attacker.budget


@pytest.mark.parametrize("budget, overrides, message", [
    (None, {"colour": "red"}, r"unknown attacker setting\(s\) colour"),
    (Budget(0.02), {"epsilon": 0.01}, "epsilon given twice: as the budget and as an override"),
    (None, {"fisher_clips": 0}, "fisher_clips must be positive"),
    (None, {"online_ewc_gamma": 2.0}, r"online_ewc_gamma must be in \[0, 1\]"),
    (None, {"si_damping": 0.0}, "si_damping must be positive"),
    (None, {"losses": ("cw", "l2")}, "losses must be distinct names"),
    (Budget(), {"head": "clip"}, "the paper's sigmoid has neither"),
])
def test_resolve_rejects(budget, overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve(PROFILES["smoke"], budget, **overrides)


@pytest.mark.parametrize("epsilon, snr_db, message", [
    (0.0, None, "epsilon must be a positive number, got 0.0"),
    (-0.01, 30.0, "epsilon must be a positive number"),
    (float("inf"), None, "epsilon must be a positive number"),
    (None, float("nan"), "snr_db must be a finite number of dB"),
])
def test_budget_rejects(epsilon, snr_db, message):
    with pytest.raises(ValueError, match=message):
        Budget(epsilon, snr_db)


def test_budget_options_become_one_budget():
    import click

    from tfadvser_cli.budget import budget_of, resolved_profile

    assert budget_of(None, None, None) is None  # the profile's
    assert budget_of("paper", None, None) == Budget()
    assert budget_of("bounded", None, None) == Budget.default()
    assert budget_of(None, None, 20.0) == Budget(None, 20.0)  # the other bound dropped
    with pytest.raises(click.BadParameter, match="the paper's perturbation is unbounded"):
        budget_of("paper", 0.01, None)
    with pytest.raises(click.BadParameter, match="epsilon must be a positive number, got -1"):
        budget_of(None, -1.0, None)
    smoke = PROFILES["smoke"]
    assert resolved_profile(smoke, None, generator=None) == smoke
    with pytest.raises(click.BadParameter, match="head and curriculum"):
        resolved_profile(smoke, Budget(), head="scale")


def test_a_budget_bound_must_be_a_number():
    with pytest.raises(ValueError, match="epsilon must be a number, got 'x'"):
        AttackerConfig(epsilon="x")
