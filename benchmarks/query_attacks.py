"""The closing table of issue 32: query-based black-box attacks on a run's defences.

    nice -n 10 python benchmarks/query_attacks.py RUN OUT.json [--clips 16] [--queries 1000]

CNN-4 and ResNet-50 as victims (through predict only), at L∞ 0.008 + SNR >= 30 dB and at
L∞ 0.032 without a floor: Square Attack and HopSkipJump with and without the run's
single-task attacker as the prior, one-shot transfer from the attackers trained against
the other defences, noise at the budget and white-box PGD; progress on stderr, the record
(`experiment/query_attack.py`) to OUT.json, the report section (Markdown) to stdout.
"""
import argparse
import sys
import time
from pathlib import Path

from tfadvser.config import Budget
from tfadvser.experiment.query_attack import measure_run
from tfadvser.experiment.query_report import query_section


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--victims", default="cnn4,resnet50")
    parser.add_argument("--attacks", default="square,hsj")
    parser.add_argument("--prior", default="single-cnn4-eps0.008-snr30")
    parser.add_argument("--transfer", action="append", default=[], metavar="NAME=SPEC",
                        help="a transfer row: NAME=LABEL[:TASK] (repeatable)")
    args = parser.parse_args()
    start = time.time()

    def progress(line):
        print(f"[{time.time() - start:6.0f} s] {line}", file=sys.stderr, flush=True)

    transfer = dict(t.split("=", 1) for t in args.transfer)
    record = measure_run(args.run, args.victims.split(","), [Budget(0.008, 30.0), Budget(0.032, None)],
                         args.attacks.split(","), args.queries, args.clips, Path(args.out),
                         prior=args.prior, transfer=transfer, progress=progress)
    print("\n".join(query_section(record)))


if __name__ == "__main__":
    main()
