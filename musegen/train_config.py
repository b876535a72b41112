"""What defines a training run: `TrainConfig`, its defaults and checks (no torch import, so
`musegen train --help` shows the defaults at once). `musegen.train` runs it."""

from __future__ import annotations

from dataclasses import dataclass, field

from musegen.errors import ConfigError
from musegen.options import ARCHITECTURES, CHORD_ORDERS, INFILL_FORMS, TRAIN_PRECISIONS


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint's config.json)."""

    arch: str
    data: list[str]  # corpus dirs (musegen data) or MIDI folders; a str is one dir
    out: str
    preset: str = "small"
    tokens: int = 20_000_000  # training budget in tokens (steps = tokens / (batch * seq_len))
    batch_size: int = 16
    seq_len: int = 512
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_shift: int = 6  # transposition augmentation, semitones each way
    octaves: int = 0  # register augmentation, octaves each way (added to the semitones)
    mix: list[float] | None = None  # share of windows per data dir (None: by their tokens)
    infill_rate: float = 0.5  # share of training windows that are infilling examples
    chord_order: str = "bass"  # notes that start together: "bass" (lowest) or "top" first
    infill_form: str = "spm"  # how they are arranged: "spm" or "psm" (musegen.tokens.infill)
    eval_every: int = 250
    eval_tunes: int = 250  # validation tunes scored at each evaluation (spread over the split)
    patience: int = 8  # early stop after this many evaluations without improvement
    seed: int = 0
    init: str | None = None  # fine-tune from a checkpoint (shipped name or directory)
    device: str = "auto"
    # autocast: "auto" is bfloat16 on a GPU and on a CPU with bfloat16 instructions, else float32
    precision: str = "auto"
    workers: int | None = None  # processes making batches ahead (None: 0 on CPU, up to 4 on GPU)
    overrides: dict = field(default_factory=dict)  # model config overrides

    def __post_init__(self) -> None:
        self.data = [self.data] if isinstance(self.data, str) else [str(d) for d in self.data]
        if not self.data:
            raise ConfigError("--data needs at least one corpus directory")
        if self.mix is not None:
            self.mix = [float(w) for w in self.mix]
            if len(self.mix) != len(self.data) or min(self.mix) < 0 or sum(self.mix) <= 0:
                raise ConfigError(
                    f"--mix needs one non-negative weight per --data directory ({len(self.data)}"
                    f"), not all zero, e.g. --mix {' '.join(['1'] * len(self.data))}"
                )
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown --arch {self.arch!r}; choose {', '.join(ARCHITECTURES)}")
        for name in ("tokens", "batch_size", "seq_len", "eval_every", "eval_tunes", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.workers is not None and self.workers < 0:
            raise ConfigError("--workers must be 0 or more")
        if self.max_shift < 0 or self.octaves < 0:
            raise ConfigError("--max-shift and --octaves must be 0 or more")
        if not 0.0 <= self.infill_rate <= 1.0:
            raise ConfigError("--infill-rate must be between 0 and 1 (e.g. 0.5)")
        if self.chord_order not in CHORD_ORDERS:
            raise ConfigError(f"--chord-order must be one of {', '.join(CHORD_ORDERS)}")
        if self.infill_form not in INFILL_FORMS:
            raise ConfigError(f"--infill-form must be one of {', '.join(INFILL_FORMS)}")
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(TRAIN_PRECISIONS)}")
        if not 0 < self.lr < 1:
            raise ConfigError("--lr must be between 0 and 1 (e.g. 1.5e-3)")

    @property
    def steps(self) -> int:
        return max(1, self.tokens // (self.batch_size * self.seq_len))
