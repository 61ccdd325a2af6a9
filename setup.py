"""Install tfadvser: the library (`tfadvser`) and its command line (`tfadvser_cli`).

Every dependency is pinned to the exact version the test suite runs with. TensorFlow stays
at 2.16.x because tensorflow-io 0.37.1, its last release, loads its native audio ops only
against TF 2.16 (see DESIGN.md).
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow==2.16.2",
    "tensorflow-io==0.37.1",
    "tensorflow-io-gcs-filesystem==0.37.1",
    "keras==3.5.0",
    "keras-tuner==1.4.7",
    "tensorboard==2.16.2",
    "librosa==0.11.0",
    "numpy==1.26.4",
    "scipy==1.13.1",
    "soundfile==0.12.1",
    "matplotlib==3.9.2",
    "click==8.1.7",
    "tqdm==4.66.5",
    "pesq==0.0.4",
    "pystoi==0.4.1",
    # report.html is rendered from report.md (experiment/html_report.py): CommonMark + tables.
    "markdown-it-py==4.3.0",
    # PGD baseline (attack/baselines.py); its TensorFlow MI-FGSM path is disabled upstream.
    "adversarial-robustness-toolbox==1.20.1",
]

TEST_REQUIRES = [
    "pytest==8.3.3",
]

setup(
    name="tfadvser",
    version="0.1.0",
    description=(
        "Black-box adversarial attacks on speech-emotion recognition models, "
        "with lifelong learning for transferability (Ren et al., INTERSPEECH 2020)."
    ),
    python_requires=">=3.11,<3.12",
    # `cli/` is installed under a unique import name so that no bare top-level module
    # called `cli` lands in site-packages.
    packages=find_packages(include=["tfadvser", "tfadvser.*"]) + ["tfadvser_cli"],
    package_dir={"tfadvser": "tfadvser", "tfadvser_cli": "cli"},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
    entry_points={"console_scripts": ["tfadvser=tfadvser_cli.main:main"]},
)
