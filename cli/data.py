"""Data commands: `synth` (the built-in corpus) and `prepare` (audio -> TFRecords)."""
import time

import click

from tfadvser.config import LONG_CLIP_POLICIES, CorpusConfig
from tfadvser.data.corpora import READERS
from tfadvser_cli.errors import build_config, user_errors

CORPUS_KINDS = tuple(READERS)


@click.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--speakers", default=CorpusConfig.speakers, show_default=True, type=click.IntRange(1),
              help="Number of speakers (genders alternate).")
@click.option("--utterances", default=CorpusConfig.utterances, show_default=True,
              type=click.IntRange(1),
              help="Utterances per speaker and emotion.")
@click.option("--difficulty", default=CorpusConfig.difficulty, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="0 = strong, consistent emotion cues; 1 = weak cues drowned in speaker "
                   "and utterance variation.")
@click.option("--no-neutral", is_flag=True, help="Do not generate neutral utterances.")
@click.option("--seed", default=CorpusConfig.seed, show_default=True, type=int,
              help="Same seed, same files.")
@click.option("--first-speaker", default=1, show_default=True, type=click.IntRange(1, 99),
              help="Number of the first speaker. With the same seed, --first-speaker 31 gives "
                   "30 new voices beside the default corpus's 30: an attacker corpus for "
                   "`train attacker --attacker-data`.")
@user_errors
def synth_command(out_dir, speakers, utterances, difficulty, no_neutral, seed, first_speaker):
    """Synthesise the built-in emotional-speech corpus into OUT_DIR.

    Source-filter speech (glottal pulses with jitter/shimmer, formant resonators) whose
    prosody and voice quality follow the seven DEMoS emotions (plus neutral). 16-bit WAV,
    1.5-7 s, some at 22.05/44.1 kHz and some stereo; DEMoS file names
    (e.g. PR_f_01_ang01b.wav), so read it with `prepare --corpus demos`.
    """
    from tqdm import tqdm

    from tfadvser.data.emotions import DEMOS_LABELS
    from tfadvser.data.synth import synthesize_corpus

    total = speakers * utterances * (len(DEMOS_LABELS) + (0 if no_neutral else 1))
    started = time.time()
    with tqdm(total=total, desc="synthesising", unit="file") as bar:
        paths = synthesize_corpus(out_dir, n_speakers=speakers, utterances=utterances,
                                  difficulty=difficulty, seed=seed,
                                  include_neutral=not no_neutral, first_speaker=first_speaker,
                                  progress=lambda _: bar.update(1))
    click.echo(f"wrote {len(paths)} files to {out_dir} in {time.time() - started:.1f} s")


@click.command("prepare")
@click.argument("audio_dir", type=click.Path(exists=True))
@click.option("--corpus", "corpus", required=True, type=click.Choice(CORPUS_KINDS),
              help="File layout: DEMoS/EmoDB/RAVDESS/CREMA-D names, a CSV manifest "
                   "(path,label,speaker[,gender]), or one folder per label.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder, e.g. tfrecords/NAME.")
@click.option("--keep-neutral/--drop-neutral", default=None,
              help="Keep neutral clips. Default: dropped for DEMoS (as in the paper), kept "
                   "for the other corpora.")
@click.option("--split-lists", type=click.Path(exists=True, file_okay=False),
              help="Folder with train.txt, dev.txt, test.txt (one file name per line) "
                   "instead of the automatic speaker split.")
@click.option("--dev-fraction", default=0.2, show_default=True, type=float,
              help="Share of speakers for dev.")
@click.option("--test-fraction", default=0.2, show_default=True, type=float,
              help="Share of speakers for test.")
@click.option("--split-seed", default=0, show_default=True, type=int)
@click.option("--long-clips", default="head", show_default=True,
              type=click.Choice(LONG_CLIP_POLICIES),
              help="Clips longer than 373 frames: keep the first or the middle 373 frames, "
                   "or skip them. Shorter clips are always tiled.")
@click.option("--shard-mb", default=64.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Target shard size.")
@click.option("--strict", is_flag=True, help="Fail (non-zero exit) if any file is rejected.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def prepare_command(audio_dir, corpus, out_dir, keep_neutral, split_lists, dev_fraction,
                    test_fraction, split_seed, long_clips, shard_mb, strict, overwrite, quiet):
    """Turn an audio corpus in AUDIO_DIR into log-Mel TFRecords.

    16 kHz mono, magnitude STFT (512-sample symmetric Hamming window, hop 256), Slaney mel
    (64 bins, 20-8000 Hz), natural log, 373 frames: the features of the original code.
    Speaker-independent train/dev/test split; per-mel-bin statistics from train only.
    Rejected files are listed with their reason in OUT/metadata.json.
    """
    import tensorflow as tf

    from tfadvser.config import FeatureConfig, SplitConfig
    from tfadvser.data.prepare import prepare

    # tensorflow-io's resampler logs a warning per trace that says nothing to a user.
    tf.get_logger().setLevel("ERROR")

    features = build_config(FeatureConfig, long_clips=long_clips)
    split = build_config(SplitConfig, dev_fraction=dev_fraction, test_fraction=test_fraction,
                         seed=split_seed)
    metadata = prepare(audio_dir, corpus, out_dir, feature_config=features, split_config=split,
                       keep_neutral=keep_neutral, split_lists=split_lists, strict=strict,
                       overwrite=overwrite, shard_mb=shard_mb, progress=not quiet)
    totals = metadata["totals"]
    click.echo(f"prepared {sum(totals.values())} clips into {out_dir} in {metadata['seconds']:.1f} s: "
               + ", ".join(f"{split} {n} ({len(metadata['speakers'][split])} speakers)"
                           for split, n in totals.items()))
    labels = (", ".join(metadata["labels"]) if metadata["labelled"] else
              "none (unlabelled: attacker data for the label-free losses, every clip in train)")
    click.echo(f"labels: {labels}; truncated: "
               f"{metadata['truncated']['count']}; skipped: {len(metadata['skipped'])}")
    for item in metadata["skipped"][:20]:
        click.echo(f"  skipped {item['path']}: {item['reason']}")
    if len(metadata["skipped"]) > 20:
        click.echo(f"  ... {len(metadata['skipped']) - 20} more in {out_dir}/metadata.json")
    for warning in metadata["warnings"]:
        click.echo(f"warning: {warning}", err=True)
