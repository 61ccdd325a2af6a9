"""Report text that depends on what ran: no baselines mentioned when none ran, the audio
section naming the option of both commands that turns it on, and counted nouns in the
singular for 1."""
from tfadvser.experiment.findings import _baseline_lines
from tfadvser.experiment.report import _audio_section, _budget_note
from tfadvser.experiment.results import Results, TaskScores
from tfadvser.experiment.robustness_report import robustness_section
from tfadvser.experiment.wording import count

ROWS = [{"method": "Single-task", "sequence": "CNN-4", "keys": ["k"]}]


def results_with(baselines: dict) -> Results:
    return Results(defences={"cnn4": {"test": {"uar": 0.765}}},
                   tasks={"k": TaskScores(test={"against": {"cnn4": {"adversarial_uar": 0.759}}})},
                   baselines=baselines or None)


def baselines(clips: int) -> dict:
    scored = {"adversarial_uar": 0.755, "clean_uar": 0.745}
    return {"eps0.008-snr30": {"label": "L∞ ≤ 0.008", "clips": clips,
                               "test": {"noise": {"cnn4": scored}}}}


def test_count():
    assert [count(n, "speaker") for n in (0, 1, 2, 6)] == [
        "0 speakers", "1 speaker", "2 speakers", "6 speakers"]
    assert count(1, "seeded test clip") == "1 seeded test clip"
    assert count(96, "seeded test clip") == "96 seeded test clips"


def test_no_baselines_no_mention_of_them():
    for section in (robustness_section(results_with({}), ROWS), [_budget_note(results_with({}))]):
        assert not any("baseline" in line for line in section), section
    intro = robustness_section(results_with({}), ROWS)[2]
    assert intro.endswith("under each attack (Table 1's attackers, mean over seeds). Lower "
                          "adversarial UAR = less robust.")
    assert _budget_note(results_with({})).endswith("Each budget gets its own Table 1, findings.\n")

    # ... and with them, as before
    intro = robustness_section(results_with(baselines(96)), ROWS)[2]
    assert intro.endswith("(Table 1's attackers, mean over seeds, then the baselines). Lower "
                          "adversarial UAR = less robust.")
    assert _budget_note(results_with(baselines(96))).endswith(
        "Each budget gets its own Table 1, baselines and findings.\n")


def test_counted_nouns_in_the_robustness_section_and_baselines():
    for clips, words in ((1, "1 clip"), (96, "96 clips")):
        table = robustness_section(results_with(baselines(clips)), ROWS)
        assert f"| none (clean, on the baselines' {words}; L∞ ≤ 0.008) | 74.5 |" in table
    # The text only (no defence columns): the sizes and costs the table needs, nothing else.
    base = {"label": "L∞ ≤ 0.008", "clips": 1,
            "test": {"sizes": {"noise": {"snr_db": 30.0}}, "seconds": {}}}
    text = _baseline_lines(base, [])[2]
    assert text.startswith("Adversarial UAR [%] with 95 % intervals on 1 seeded test clip (the "
                           "clean row"), text
    text = _baseline_lines({**base, "clips": 2}, [])[2]
    assert "on 2 seeded test clips (the clean row" in text
    text = _baseline_lines({"label": "x", "test": base["test"]}, [])[2]
    assert "on all test clips (the clean row" in text


def test_audio_section_when_not_run_names_the_option_of_both_commands():
    assert _audio_section(results_with({}), ROWS) == [
        "## Audio round trip", "",
        "Not run (audio clips set to 0); `tfadvser evaluate RUN_DIR --audio-clips N` or "
        "`tfadvser reproduce --data DATA --out RUN_DIR --audio-clips N` with N > 0 runs it.", ""]
