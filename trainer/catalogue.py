# The catalogue is a table of entries, one per field: on purpose one file, however long.
"""The catalogue: every setting and trick Danlu offers, in one place.

Each entry names a field of ``RunConfig`` (built from this list in ``config.py``), its type,
default, range, group and help text. The launch form, ``python -m trainer tricks`` and the Tricks
page are all generated from ``CATALOGUE``: adding an entry here adds the control everywhere. A
trick's default always means "off", so a config with only defaults is the plain baseline.

How each trick is applied lives where it acts (``loop.py`` for the loss and optimiser, ``models.py``
for architecture, ``data.py``/``augment.py`` for data); ``applied_in`` points there.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass
from typing import Any, Literal

GROUPS = (
    "Run",
    "Data & augmentation",
    "Architecture",
    "Regularisation",
    "Loss",
    "Optimisation & schedule",
    "Evaluation",
    "Precision & speed",
)


@dataclass(frozen=True)
class Trick:
    name: str  # the RunConfig field
    group: str
    label: str
    annotation: Any  # the field's type, e.g. float or Literal["a", "b"]
    default: Any
    what: str  # what it does
    helps: str = ""  # when it helps
    hurts: str = ""  # when it hurts
    show: str = ""  # what to look at when comparing it with a baseline
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    max_length: int | None = None  # longest text (characters) or list (items)
    step: float | None = None  # UI increment for numbers
    kind: Literal["setting", "trick"] = "trick"
    # only meaningful when the field holds one of the values (an empty tuple: when it is set)
    when: tuple[str, tuple[Any, ...]] | None = None
    applied_in: str = ""
    pitfall: bool = False  # a demonstration of a mistake, not something to use
    example: dict[str, Any] | None = None  # overrides that switch it on for a "try it" run

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """The allowed values of a Literal field (first Literal in a union), else None."""
        for ann in (self.annotation, *typing.get_args(self.annotation)):
            if typing.get_origin(ann) is Literal:
                return typing.get_args(ann)
        return None

    @property
    def type_name(self) -> str:
        if self.choices is not None and typing.get_origin(self.annotation) is Literal:
            return "choice"
        if self.annotation in (bool, int, float, str):
            return self.annotation.__name__
        return "list" if "list" in repr(self.annotation) else "json"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["annotation"] = self.type_name
        d["choices"] = list(self.choices) if self.choices is not None else None
        if self.when:
            d["when"] = {"field": self.when[0], "in": list(self.when[1]), "set": not self.when[1]}
        d["example"] = self.try_overrides
        return d

    @property
    def try_overrides(self) -> dict[str, Any]:
        """Config overrides that turn this trick on with a typical value."""
        return dict(self.example) if self.example is not None else {}


T = Trick

CATALOGUE: tuple[Trick, ...] = (
    # --- Run ---------------------------------------------------------------------------------
    # Lengths are capped: two 100,000-character names once made Compare exceed Streamlit's
    # message size.
    T("name", "Run", "Run name", str, "", "A label for charts and tables; the run id stays unique.",
      kind="setting", max_length=100),
    T("tags", "Run", "Tags", list[str], [], "Free-form labels to filter runs by.", kind="setting",
      max_length=20),
    T("dataset", "Run", "Dataset",
      Literal["digits", "mnist1d", "synthetic", "csv", "npz", "images"], "digits",
      "digits: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes). mnist1d: the "
      "MNIST-1D benchmark (4,000 train / 1,000 test sequences of length 40), generated offline. "
      "synthetic: a tabular task with imbalance and label-noise knobs. csv: your own file. "
      "npz: your arrays x, y (and optionally x_test, y_test). images: your folder of images, "
      "one subfolder per class.",
      kind="setting", applied_in="trainer/data.py"),
    T("model", "Run", "Model", Literal["auto", "mlp", "cnn"], "auto",
      "mlp: fully-connected layers. cnn: convolutions (2D for images, 1D for sequences). auto: "
      "cnn for images and sequences, mlp for tabular data.",
      kind="setting", applied_in="trainer/models.py"),
    T("epochs", "Run", "Epochs", int, 30, "Passes over the training set.", ge=1, le=1000,
      kind="setting"),
    T("batch_size", "Run", "Batch size", int, 128,
      "Samples per optimiser step. The notes start a search at 128 and try x0.5 and x2.",
      helps="Larger batches: smoother gradients and faster epochs on a GPU.",
      hurts="Very large batches can generalise worse; very small ones make BatchNorm noisy.",
      show="Search path with each step's metric.", ge=1, le=8192, kind="setting"),
    T("lr", "Run", "Learning rate", float, 1e-2,
      "The optimiser's (peak) learning rate. The default 0.01 is the MNIST-1D reference setting "
      "for Adam on these small models.",
      gt=0, le=10, step=1e-4, kind="setting"),
    T("optimizer", "Run", "Optimizer", Literal["adam", "adamw", "sgd", "rmsprop"], "adam",
      "adam; adamw (Adam with decoupled weight decay); sgd (with momentum, optionally Nesterov); "
      "rmsprop.", helps="Adam-family: fast progress with little tuning.",
      hurts="SGD needs a tuned learning rate and schedule but often generalises a little better.",
      show="Curves side by side.", kind="setting", applied_in="trainer/loop.py"),
    T("seed", "Run", "Seed", int, 0,
      "Seeds initialisation, batch order and augmentation. Runs that differ only by seed are "
      "grouped as mean ± spread.", ge=0, le=2**31 - 1, kind="setting"),
    T("device", "Run", "Device", Literal["auto", "cpu", "cuda", "mps"], "auto",
      "auto picks CUDA, then Apple MPS, then the CPU.", kind="setting"),
    # --- Data & augmentation ------------------------------------------------------------------
    T("split_seed", "Data & augmentation", "Split seed", int, 0,
      "Seeds the train/val/test split (and label noise). Kept apart from the training seed so that "
      "runs with different seeds share one test set.", ge=0, le=2**31 - 1, kind="setting"),
    T("val_fraction", "Data & augmentation", "Validation fraction", float, 0.15,
      "Share of the data held out for validation (stratified).", gt=0, lt=0.5, step=0.05,
      kind="setting"),
    T("test_fraction", "Data & augmentation", "Test fraction", float, 0.15,
      "Share of the data held out for the final test (stratified). MNIST-1D keeps its own test "
      "set.", gt=0, lt=0.5, step=0.05, kind="setting"),
    T("csv_path", "Data & augmentation", "CSV file", str, "",
      "Path to a CSV with numeric feature columns and one label column.", kind="setting",
      when=("dataset", ("csv",)), max_length=4096),
    T("csv_label", "Data & augmentation", "CSV label column", str, "label",
      "Name of the label column in the CSV.", kind="setting", when=("dataset", ("csv",)),
      max_length=200),
    T("data_path", "Data & augmentation", "Data file or folder", str, "",
      "npz: path of an .npz archive with arrays x (N x F, N x H x W or N x C x H x W) and y, "
      "optionally x_test and y_test. images: a folder with one subfolder of images per class.",
      kind="setting", when=("dataset", ("npz", "images")), max_length=4096),
    T("image_size", "Data & augmentation", "Image size", int, 32,
      "Images of an image folder are resized to this many pixels square.", ge=4, le=512,
      kind="setting", when=("dataset", ("images",))),
    T("data_placement", "Data & augmentation", "Data placement",
      Literal["auto", "device", "loader"], "auto",
      "auto: the whole dataset is copied to the device when it takes at most half of its free "
      "memory, otherwise a DataLoader streams batches (worker processes, pinned memory on CUDA). "
      "device / loader force one. The run records which it used.", kind="setting"),
    T("n_samples", "Data & augmentation", "Samples", int, 3000, "Size of the synthetic task.",
      ge=100, le=1_000_000, kind="setting", when=("dataset", ("synthetic",))),
    T("n_features", "Data & augmentation", "Features", int, 20, "Features of the synthetic task.",
      ge=2, le=1000, kind="setting", when=("dataset", ("synthetic",))),
    T("n_classes", "Data & augmentation", "Classes", int, 4, "Classes of the synthetic task.",
      ge=2, le=50, kind="setting", when=("dataset", ("synthetic",))),
    T("imbalance", "Data & augmentation", "Class imbalance", float, 1.0,
      "Ratio of the largest class to the smallest in the synthetic task (1 = balanced); class 0 "
      "is the majority, the last class the minority.",
      helps="Shows which tricks (focal loss, class weights) protect minority-class recall.",
      show="Minority-class recall and F1 in Compare's per-class view.",
      ge=1, le=100, step=1, when=("dataset", ("synthetic",)), applied_in="trainer/data.py",
      example={"dataset": "synthetic", "imbalance": 10.0}),
    T("label_noise", "Data & augmentation", "Label noise", float, 0.0,
      "Share of TRAIN labels replaced by a random other class; validation and test stay clean "
      "(the notes' competition had noisy train labels and a clean test set).",
      helps="Tests which tricks hold up under noise (label smoothing, early stopping, flooding). "
      "On digits (Try it: 15 epochs, 3 seeds, paired): 20% noisy labels raised test ECE 0.02 → "
      "0.17 (95% CI +0.07 to +0.23); accuracy −3.5 points, no clear effect.",
      show="Which tricks keep test metrics up.", ge=0, lt=1, step=0.05,
      applied_in="trainer/data.py",
      example={"label_noise": 0.2}),
    T("class_subset", "Data & augmentation", "Class subset", list[int] | None, None,
      "Keep only these classes (e.g. 5,6,7,8,9), relabelled 0..n-1 in the order given. With "
      "fine-tuning, pretrain on one subset and fine-tune on another.", kind="setting"),
    T("init_from", "Data & augmentation", "Fine-tune from run", str, "",
      "Start from the weights (checkpoint.pt) of another finished run with the same "
      "architecture; a head whose number of classes differs starts fresh.",
      helps="Little data for the new task, a related pretraining task.",
      hurts="Unrelated source tasks transfer little; a high LR erases what was learnt.",
      show="Frozen vs full fine-tune vs from-scratch curves.", applied_in="trainer/pretrained.py"),
    T("freeze_features", "Data & augmentation", "Freeze feature extractor", bool, False,
      "Train only the classifier head; the feature extractor keeps the pretrained weights "
      "(and its BatchNorm statistics).",
      helps="Very little data, or a source task close to the new one.",
      hurts="Features the new task needs but the source task did not.",
      when=("init_from", ()), applied_in="trainer/pretrained.py"),
    T("augment_hflip", "Data & augmentation", "Horizontal flip", bool, False,
      "Flip each training sample left-right with probability 1/2 (reverses a sequence).",
      helps="Natural images and tasks whose classes are mirror-symmetric.",
      hurts="The notes warn augmentation must suit the task: a flipped digit is another digit. "
      "Measured on digits (15 epochs, 5 seeds, paired): test accuracy −2.4 points, 95% CI "
      "−6.5 to +1.6 (2 torch threads; on 1 thread −3.0, CI −6.8 to +0.9): a loss too small for "
      "5 seeds to tell from zero.",
      show="Flips hurt digits.", applied_in="trainer/augment.py",
      example={"augment_hflip": True}),
    T("augment_vflip", "Data & augmentation", "Vertical flip", bool, False,
      "Flip each training image upside-down with probability 1/2 (images only).",
      helps="Satellite and microscopy images, which have no 'up'.",
      hurts="Digits and anything with an orientation. On digits (Try it: 15 epochs, 3 seeds, "
      "paired): accuracy −1.5 points, 95% CI −9.0 "
      "to +6.1, no clear effect at that size.", applied_in="trainer/augment.py",
      example={"augment_vflip": True}),
    T("augment_dflip", "Data & augmentation", "Diagonal flip", bool, False,
      "Transpose each training image with probability 1/2 (square images only).",
      helps="Rotation-invariant imagery (the notes' satellite road segmentation).",
      hurts="Anything with an orientation. On digits (Try it: 15 epochs, 3 seeds, paired): "
      "accuracy −3.6 points, 95% CI −7.4 to +0.3, "
      "not clear at that size; ECE worse by 0.011 (CI +0.003 to +0.020).",
      applied_in="trainer/augment.py", example={"augment_dflip": True}),
    T("augment_shift", "Data & augmentation", "Random shift", int, 0,
      "Shift each training sample by up to this many pixels/steps, padding with zeros.",
      helps="Translation-invariant signals: the notes' shifts help MNIST-1D (not measured "
      "here yet).",
      hurts="Large shifts on tiny inputs (8x8 digits) crop away the object. On digits (Try it: "
      "15 epochs, 3 seeds, paired): shift 2 "
      "took accuracy 0.96 → 0.77 on average, but so unevenly (95% CI −48 to +11 points) that "
      "it is no clear effect at that size.",
      show="Shifts help MNIST-1D (the notes).", ge=0, le=16, applied_in="trainer/augment.py",
      example={"augment_shift": 2}),
    T("augment_noise", "Data & augmentation", "Gaussian noise", float, 0.0,
      "Add Gaussian noise of this standard deviation to each training input.",
      helps="Small data, smooth inputs. It did not show on digits (Try it: 15 epochs, 3 seeds, "
      "paired): −0.7 points, 95% CI −5.6 to +4.1.", hurts="Too much noise drowns the signal.",
      ge=0, le=2, step=0.01, applied_in="trainer/augment.py",
      example={"augment_noise": 0.1}),
    # --- Architecture -------------------------------------------------------------------------
    T("norm", "Architecture", "Normalisation", Literal["none", "batch", "group"], "none",
      "Normalisation after each hidden layer: BatchNorm or GroupNorm.",
      helps="BatchNorm speeds up and stabilises training (the notes found BN helps conv nets "
      "more than dropout); GroupNorm does not depend on the batch size. On digits (Try it: 15 "
      "epochs, 3 seeds, paired): BatchNorm +3.1 "
      "accuracy points, 95% CI +1.7 to +4.5.",
      hurts="BatchNorm degrades with very small batches; GroupNorm holds up.",
      show="Curves; small-batch behaviour.", applied_in="trainer/models.py",
      example={"norm": "batch"}),
    T("norm_groups", "Architecture", "GroupNorm groups", int, 4,
      "Groups G of GroupNorm (channels are rounded up to a multiple of G).", ge=1, le=64,
      kind="setting", when=("norm", ("group",))),
    T("activation", "Architecture", "Activation",
      Literal["relu", "leaky_relu", "gelu", "tanh", "sigmoid"], "relu",
      "The non-linearity of hidden layers.",
      helps="ReLU-family and GELU keep gradients flowing in deep nets. On digits (Try it: 15 "
      "epochs, 3 seeds, paired): GELU vs ReLU +1.6 points, 95% CI −0.7 to +3.9, no clear effect.",
      hurts="sigmoid/tanh deep nets train slower (vanishing gradients).",
      show="Loss curves of deep variants.", applied_in="trainer/models.py",
      example={"activation": "gelu"}),
    T("residual", "Architecture", "Skip connections", bool, False,
      "Residual blocks: F(x) + x around each hidden block.",
      helps="Deep variants keep training.", hurts="Little effect on shallow nets. On digits (Try "
      "it: 15 epochs, 3 seeds, paired), depth 3: +1.1 points, 95% CI −2.9 to +5.1, no clear "
      "effect.",
      show="Deep variant trains; without skips it degrades.", applied_in="trainer/models.py",
      example={"residual": True}),
    T("head", "Architecture", "Head", Literal["fc", "gap"], "fc",
      "fc: flatten the feature map into a fully-connected classifier. gap: global average "
      "pooling then one linear layer (CNN only).",
      helps="gap: far fewer parameters, less overfitting. On digits (Try it: 15 epochs, 3 seeds, "
      "paired): 45,866 → 28,394 parameters, "
      "accuracy +0.4 points, 95% CI −3.6 to +4.4 (no clear effect).",
      hurts="gap: loses position information some tasks need.",
      show="Parameter count vs accuracy.", applied_in="trainer/models.py",
      example={"head": "gap"}),
    T("width", "Architecture", "Width multiplier", float, 1.0,
      "Multiplies every layer's width (channels or hidden units).",
      helps="Halving widths often barely hurts (the notes: halving U-Net's channels did not) and "
      "runs faster. On digits (Try it: 15 epochs, 3 seeds, paired): width 0.5 has 11,930 instead "
      "of 45,866 parameters, accuracy −1.9 "
      "points, 95% CI −10.3 to +6.6 (no clear effect).", hurts="Too narrow underfits.",
      show="Accuracy vs parameter count.",
      ge=0.125, le=8, step=0.125, applied_in="trainer/models.py",
      example={"width": 0.5}),
    T("depth", "Architecture", "Depth", int, 3, "Hidden blocks (conv blocks or hidden layers).",
      ge=1, le=16, kind="setting", applied_in="trainer/models.py"),
    T("forget_eval", "Architecture", "Forget eval() (pitfall demo)", bool, False,
      "PITFALL DEMONSTRATION: evaluate with the model left in train() mode, as a forgotten "
      "model.eval() would. BatchNorm then normalises with batch statistics and dropout stays on.",
      helps="Never: it exists to show why calling eval() matters.",
      hurts="Val/test metrics with BatchNorm or dropout. Not on digits at Try it's size "
      "(norm=batch, dropout 0.3, 15 epochs, 3 seeds): accuracy +0.6 points, 95% CI −4.5 to "
      "+5.7, no clear effect.", show="Val metrics with and without.",
      pitfall=True, applied_in="trainer/loop.py",
      example={"forget_eval": True, "norm": "batch", "dropout": 0.3}),
    # --- Regularisation -----------------------------------------------------------------------
    T("weight_decay", "Regularisation", "Weight decay", float, 0.0,
      "L2 penalty on the weights through the optimiser. For SGD, weight decay λ equals an L2 term "
      "(λ/2)·Σw² in the loss; with adamw it is decoupled from the gradient scaling.",
      helps="Overfitting models; pairs well with adamw. On digits (Try it: adamw, 0.05, 15 "
      "epochs, 3 seeds, paired): weight norm 20.0 → 18.7 (95% CI of the change −2.0 to −0.6), "
      "accuracy +0.4 points, 95% CI −1.2 to +2.0, no clear effect.",
      hurts="Too strong underfits; on BN layers' scale it mostly changes the effective LR. "
      "With Adam (not adamw) the penalty is coupled to Adam's scaling: 0.05 with Adam on "
      "digits collapsed every seed to chance (accuracy 0.96 → 0.10, weight norm 19.8 → 0.006).",
      show="Total weight norm falls vs baseline.", ge=0, le=1, step=1e-4,
      applied_in="trainer/loop.py",
      example={"optimizer": "adamw", "weight_decay": 0.05}),
    T("wd_exclude_norm_bias", "Regularisation", "No decay on norm/bias", bool, False,
      "Exempt biases and normalisation parameters from weight decay.",
      helps="Common practice for BN nets: decaying BN scales and biases rarely helps. On "
            "digits (Try it: adamw, weight decay 0.05, norm=batch, 15 epochs, 3 seeds, "
            "paired): accuracy −0.2 points, 95% CI −1.7 to +1.2, no clear effect (both sides "
            "0.99).",
      applied_in="trainer/loop.py",
      example={"optimizer": "adamw", "norm": "batch", "weight_decay": 0.05,
               "wd_exclude_norm_bias": True}),
    T("l1", "Regularisation", "L1 penalty", float, 0.0,
      "Adds λ·Σ|w| over weight matrices to the loss, pushing weights to exactly zero.",
      helps="Sparse, prunable models; many useless inputs. On digits (Try it: 15 epochs, 3 "
      "seeds, paired): 1e-4 raised the share of "
      "near-zero weights from 0.9% to 47% (95% CI +35 to +57 points).",
      hurts="Too strong underfits: the same runs' accuracy fell 0.96 → 0.65 on average, "
      "unevenly across seeds (no clear effect at 3 seeds).",
      show="Weight sparsity (share of near-zero weights).", ge=0, le=0.1, step=1e-5,
      applied_in="trainer/loop.py",
      example={"l1": 0.0001}),
    T("dropout", "Regularisation", "Dropout (FC layers)", float, 0.0,
      "Drop probability on fully-connected hidden layers.",
      helps="Large fully-connected layers that overfit. On digits (Try it: 15 epochs, 3 seeds, "
      "paired): 0.3 moved accuracy by +0.4 "
      "points (one test image) on every seed: no real effect at that size.",
      hurts="Small models underfit; slows convergence.", show="Train/val gap.", ge=0, le=0.9,
      step=0.05, applied_in="trainer/models.py",
      example={"dropout": 0.3}),
    T("spatial_dropout", "Regularisation", "Spatial dropout (conv)", float, 0.0,
      "Drops whole channels of conv feature maps (Dropout1d/2d).",
      helps="Rarely: conv layers have few parameters to regularise.",
      hurts="The notes found dropout in conv layers lowered accuracy while BN raised it. "
      "Measured (15 epochs, 5 seeds, paired): BatchNorm instead of spatial dropout 0.2 gave "
      "+5.9 accuracy points on MNIST-1D (95% CI +2.6 to +9.3), +1.7 on digits (+0.6 to +2.8). "
      "Against no regularisation on digits (3 seeds) spatial dropout 0.2 showed no clear "
      "effect (+1.5 points, CI −1.0 to +3.9).",
      show="Conv-dropout vs BatchNorm comparison.", ge=0, le=0.9, step=0.05,
      applied_in="trainer/models.py",
      example={"spatial_dropout": 0.2}),
    T("early_stopping", "Regularisation", "Early stopping patience", int, 0,
      "Stop when the monitored val metric has not improved for this many epochs (0 = off) and "
      "restore the best epoch's weights.",
      helps="Long runs that start overfitting; saves time. On digits (Try it: 15 epochs, 3 "
      "seeds, paired): patience 3 left accuracy unchanged (95% CI ±3.2 points).",
      hurts="Noisy val metrics can stop too soon: raise the patience.",
      show="Stop epoch marked on the curves.", ge=0, le=1000, applied_in="trainer/loop.py",
      example={"early_stopping": 3}),
    T("flooding", "Regularisation", "Flooding level b", float, 0.0,
      "loss' = |loss - b| + b on the batch-mean loss: below level b the gradient reverses, so "
      "the training loss hovers around b instead of going to zero (0 = off).",
      helps="Overconfident models that drive train loss to zero.",
      hurts="b above the achievable loss stops learning. On digits (Try it: 15 epochs, 3 seeds, "
      "paired): b=0.1 cut accuracy by 5.1 points (95% CI −7.9 to −2.3).", show="Train loss "
      "flattens at b.",
      ge=0, le=5, step=0.01, applied_in="trainer/loop.py",
      example={"flooding": 0.1}),
    T("label_smoothing", "Regularisation", "Label smoothing ε", float, 0.0,
      "Targets become (1-ε)·onehot + ε/K: the model is trained never to be fully sure.",
      helps="Over-confident models, e.g. trained long on noisy labels: on synthetic data with "
      "30% noisy train labels (60 epochs, 5 seeds, paired) ε=0.2 cut test ECE by 0.21 (95% CI "
      "0.16 to 0.25). Accuracy too on digits (15 epochs, 5 seeds): +3.3 points, CI +2.1 to "
      "+4.5 (2 torch threads; on 1 thread +2.2, CI +1.1 to +3.2).",
      hurts="Calibration of a small model that is already calibrated: it becomes "
      "under-confident (digits, same runs: mean confidence −0.21, test ECE +0.19, CI +0.16 to "
      "+0.22; Try it's ε=0.1 on 3 seeds: ECE +0.09, CI +0.05 to +0.13). Also distillation (it "
      "blurs the logits' ranking) and very small K.",
      show="Reliability diagram (bars below the diagonal: under-confident), ECE, "
      "max-probability histogram.",
      ge=0, le=0.5, step=0.01, applied_in="trainer/loop.py",
      example={"label_smoothing": 0.1}),
    T("random_loss_scale", "Regularisation", "Random loss scaling", bool, False,
      "Multiply each step's loss by a fresh uniform random number in [0, 1) (the notes' "
      "random.random()*loss): a random per-step learning rate.",
      helps="Sometimes escapes sharp minima. It did not show on digits (Try it: 15 epochs, 3 "
      "seeds, paired): −2.1 points, 95% CI −14 to +10.", hurts="Halves the average step size; "
      "noisier.",
      show="Noisier curve; final metrics.", applied_in="trainer/loop.py",
      example={"random_loss_scale": True}),
    # --- Loss ---------------------------------------------------------------------------------
    T("loss", "Loss", "Loss", Literal["ce", "focal", "bce"], "ce",
      "ce: softmax cross-entropy. focal: (1-p_t)^γ·CE, down-weighting easy examples. bce: "
      "one-vs-rest binary cross-entropy on each class's sigmoid (for binary / multi-label style "
      "training).",
      helps="focal: imbalanced tasks where easy majority examples dominate the loss. On the "
      "synthetic task (imbalance 20, 5 seeds, paired) focal with focal_alpha=balanced raised "
      "minority-class recall 0.55 → 0.80 (95% CI +9 to +40 points) at the cost of precision "
      "(its F1: no clear effect); focal γ=2 alone showed no clear effect there.",
      hurts="focal: the notes worry it under-fits balanced tasks, but on digits (Try it: 15 "
      "epochs, 3 seeds, paired) focal γ=2 raised accuracy +0.9 points (95% CI +0.3 to +1.4). "
      "bce: saturates near 0 and 1.",
      show="Minority-class recall/F1 on an imbalanced task.", applied_in="trainer/losses.py",
      example={"loss": "focal"}),
    T("focal_gamma", "Loss", "Focal γ", float, 2.0,
      "Focusing parameter: 0 equals cross-entropy; higher ignores easy examples more.",
      ge=0, le=10, step=0.5, kind="setting", when=("loss", ("focal",))),
    T("focal_alpha", "Loss", "Focal α", Literal["none", "balanced"] | list[float], "none",
      "Per-class weights: none, balanced (inverse class frequency in train), or a list of K "
      "numbers.", kind="setting", when=("loss", ("focal",))),
    T("bce_linear", "Loss", "BCE linear term", float, 0.0,
      "Adds λ·|y - σ(z)| to BCE: the notes warn BCE's gradient is cut off when predictions "
      "saturate near 0 and 1, and a linear term keeps gradients flowing.",
      helps="Saturated binary outputs. Not shown on digits (Try it: BCE, 15 epochs, 3 seeds, "
            "paired): accuracy 0.65 → 0.40 on average, but the seeds spread so far (the 95% "
            "CI of the change is wider than ±100 points) that it is no clear effect.",
      show="Gradient norm late in training.",
      ge=0, le=10, step=0.1, when=("loss", ("bce",)), applied_in="trainer/losses.py",
      example={"loss": "bce", "bce_linear": 1.0}),
    # --- Optimisation & schedule --------------------------------------------------------------
    T("momentum", "Optimisation & schedule", "Momentum", float, 0.9,
      "Momentum of SGD and RMSprop.", ge=0, lt=1, step=0.05, kind="setting",
      when=("optimizer", ("sgd", "rmsprop"))),
    T("nesterov", "Optimisation & schedule", "Nesterov", bool, False,
      "Nesterov momentum for SGD.",
      helps="Slightly faster SGD convergence. On digits (Try it: sgd, lr 0.05, momentum 0.9, "
            "norm=batch, 15 epochs, 3 seeds, paired): accuracy +0.5 points, 95% CI −0.9 to "
            "+1.9, no clear effect (both sides 0.99).",
      when=("optimizer", ("sgd",)), applied_in="trainer/loop.py",
      example={"optimizer": "sgd", "lr": 0.05, "norm": "batch", "nesterov": True}),
    T("lr_schedule", "Optimisation & schedule", "LR schedule",
      Literal["constant", "step", "cosine", "cosine_restarts"], "constant",
      "constant; step (×γ every N epochs); cosine (anneal to the minimum LR); cosine_restarts "
      "(cyclic LR: restart every cycle, annealing from lr to the minimum LR; torch's "
      "CosineAnnealingWarmRestarts). Stepped every batch.",
      helps="Annealing reaches lower loss; restarts escape poor minima and pair with SWA. On "
      "digits (Try it: 15 epochs, 3 seeds, paired): cosine, accuracy −0.4 points, 95% CI −3.1 to "
      "+2.4, no clear effect.",
      hurts="A step or restart at the wrong time bumps the loss up.",
      show="LR curve under the loss curve.", applied_in="trainer/schedules.py",
      example={"lr_schedule": "cosine"}),
    T("lr_step_epochs", "Optimisation & schedule", "Step every (epochs)", int, 10,
      "Epochs between LR drops of the step schedule.", ge=1, le=1000, kind="setting",
      when=("lr_schedule", ("step",))),
    T("lr_gamma", "Optimisation & schedule", "Step factor γ", float, 0.1,
      "Factor applied to the LR at each step.", gt=0, le=1, step=0.05, kind="setting",
      when=("lr_schedule", ("step",))),
    T("cycle_epochs", "Optimisation & schedule", "Cycle length (epochs)", int, 5,
      "Epochs per cosine cycle before the LR restarts.", ge=1, le=1000, kind="setting",
      when=("lr_schedule", ("cosine_restarts",))),
    T("lr_min", "Optimisation & schedule", "Minimum LR", float, 0.0,
      "Lowest LR of cosine schedules.", ge=0, le=10, step=1e-5, kind="setting",
      when=("lr_schedule", ("cosine", "cosine_restarts"))),
    T("warmup_epochs", "Optimisation & schedule", "Warm-up epochs", float, 0.0,
      "Ramp the LR linearly from 1% to lr over this many epochs before the schedule starts.",
      helps="Large LRs, Adam with BN, big batches. On digits (Try it: 15 epochs, 3 seeds, "
      "paired): 2 epochs, +0.4 points, 95% CI −1.2 to +2.0, no clear effect.",
      show="LR curve.", ge=0, le=100, step=0.5,
      applied_in="trainer/schedules.py",
      example={"warmup_epochs": 2.0}),
    T("grad_clip", "Optimisation & schedule", "Gradient clipping", float, 0.0,
      "Clip the global gradient norm to this value (0 = off).",
      helps="Spiky losses, RNN-like instability. On digits (Try it: 15 epochs, 3 seeds, paired): "
      "clip 1.0, +0.5 points, 95% CI −0.04 to +1.0, no clear effect.", hurts="Too low slows "
      "learning.",
      ge=0, le=1000, step=0.5, applied_in="trainer/loop.py",
      example={"grad_clip": 1.0}),
    T("swa", "Optimisation & schedule", "SWA", bool, False,
      "Stochastic weight averaging: average the weights over the last epochs with a constant "
      "or annealed LR, recompute BatchNorm statistics, and evaluate the averaged model.",
      helps="Flatter minima, better test accuracy for nearly free. It did not show on digits "
      "(Try it: 15 epochs, 3 seeds, paired): +0.5 points, 95% CI −0.9 to +1.9.",
      hurts="Averaging too early (before convergence) blurs a poor model.",
      show="SWA model vs final model metrics.", applied_in="trainer/loop.py",
      example={"swa": True}),
    T("swa_start", "Optimisation & schedule", "SWA start (fraction of epochs)", float, 0.75,
      "Averaging starts after this fraction of the epochs.", gt=0, lt=1, step=0.05,
      kind="setting", when=("swa", (True,))),
    T("swa_lr", "Optimisation & schedule", "SWA LR", float | None, None,
      "LR during averaging (empty: the run's lr).", gt=0, le=10, kind="setting",
      when=("swa", (True,))),
    # --- Evaluation ---------------------------------------------------------------------------
    T("monitor", "Evaluation", "Monitored val metric", Literal["loss", "accuracy", "f1", "auc"],
      "loss", "The val metric that picks the best epoch (and drives early stopping).",
      kind="setting"),
    T("top_k", "Evaluation", "Top-k", int, 3, "k of the top-k accuracy.", ge=1, le=20,
      kind="setting"),
    T("tta", "Evaluation", "Test-time augmentation", Literal["off", "flips", "shifts"], "off",
      "Average the predicted probabilities over several views of each val/test input. flips: "
      "identity, horizontal, vertical and diagonal flips (only those the input allows). shifts: "
      "identity and ±1, ±2 shifts.",
      helps="The notes cite +3 points on satellite road segmentation with flip TTA.",
      hurts="Views the task is not invariant to (flipped digits). On digits (Try it: 15 epochs, "
      "3 seeds, paired): flip TTA cut accuracy "
      "0.96 → 0.63 (95% CI −41 to −25 points) and raised ECE by 0.12.",
      show="TTA vs no-TTA metrics.",
      applied_in="trainer/augment.py",
      example={"tta": "flips"}),
    # --- Precision & speed --------------------------------------------------------------------
    T("amp", "Precision & speed", "Mixed precision", Literal["off", "fp16", "bf16"], "off",
      "Autocast the forward pass: fp16 with a GradScaler (CUDA only) or bf16 (CUDA or CPU).",
      helps="2-3x faster on tensor-core GPUs, half the activation memory.",
      hurts="bf16 is slow on most CPUs; fp16 can overflow without the scaler.",
      show="Samples/s and metrics vs fp32.", applied_in="trainer/loop.py",
      example={"amp": "bf16"}),
    T("nonfinite", "Precision & speed", "On NaN/inf loss", Literal["fail", "continue"], "fail",
      "fail: stop the run as failed with a clear reason. continue: log it and carry on.",
      kind="setting"),
    T("checkpoint", "Precision & speed", "Save weights", bool, True,
      "Save the final model's weights as checkpoint.pt.", kind="setting"),
)

BY_NAME: dict[str, Trick] = {t.name: t for t in CATALOGUE}
TRICKS: tuple[Trick, ...] = tuple(t for t in CATALOGUE if t.kind == "trick")


def by_group(entries: tuple[Trick, ...] = CATALOGUE) -> dict[str, list[Trick]]:
    """Catalogue entries grouped in display order."""
    groups: dict[str, list[Trick]] = {g: [] for g in GROUPS}
    for t in entries:
        groups[t.group].append(t)
    return {g: ts for g, ts in groups.items() if ts}


def is_active(trick: Trick, config: dict[str, Any]) -> bool:
    """Whether ``trick`` matters under ``config``: its ``when`` field holds one of the listed
    values, or, when the list is empty, is set at all (non-empty, non-zero)."""
    if trick.when is None:
        return True
    field, values = trick.when
    return config.get(field) in values if values else bool(config.get(field))


def catalogue_json() -> list[dict[str, Any]]:
    return [t.to_dict() for t in CATALOGUE]


def catalogue_markdown() -> str:
    """The tricks as Markdown tables by group (embedded in README.md)."""
    out = []
    for group, entries in by_group(TRICKS).items():
        out += [f"**{group}**", "", "| field | trick | default | what it does |",
                "|---|---|---|---|"]
        for t in entries:
            what = t.what.replace("|", "\\|")
            out.append(f"| `{t.name}` | {t.label} | `{t.default!r}` | {what} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
