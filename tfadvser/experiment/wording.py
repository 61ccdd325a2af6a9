"""Words of the run's reports that depend on what ran: counted nouns, and the options that
turn a skipped part of the protocol on."""


def count(n, noun: str) -> str:
    """`n` and `noun`, the noun's last word in the plural unless `n` is 1: count(1, "speaker")
    -> "1 speaker", count(6, "test clip") -> "6 test clips". Only for nouns whose plural
    adds an "s" (all the report's)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def turned_on_by(option: str, value: str) -> str:
    """How a user turns a skipped part on, naming both commands that run an evaluation
    (a run's results do not record which of the two ran): "`tfadvser evaluate RUN_DIR
    --audio-clips N` or `tfadvser reproduce ... --audio-clips N`"."""
    return (f"`tfadvser evaluate RUN_DIR {option} {value}` or "
            f"`tfadvser reproduce --data DATA --out RUN_DIR {option} {value}`")
