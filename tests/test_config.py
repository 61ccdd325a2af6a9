"""AttackerConfig refuses every out-of-range value with a message naming the field (the tail
of its checks once sat after an unrelated `return` and never ran)."""
import pytest

from tfadvser.config import PROFILES, AttackerConfig


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
