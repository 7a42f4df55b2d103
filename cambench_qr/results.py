"""The results schema: what ``cambench-qr evaluate`` writes to ``summary.json`` and what the model cards and
the leaderboard read from it (the row kinds are listed in ``docs/architecture.md`` s.3).

One place for the schema version, every row kind (a frozen dataclass whose fields are the row's JSON keys,
in order), the score lists (which structure scores are summarised, headlined, compared with the null maps,
given a verdict, plotted) and the method names and labels. Light on purpose (no torch): the harness writes
through it and ``hub_cards`` reads through it.

A row reads like its JSON (``row["mean"] is row.mean``, ``"group" in row``), so functions written for the
plain JSON rows take typed rows too. ``Summary.from_json`` checks the schema version and every row: an
unknown row kind or field is a ``ValueError`` naming it. A new row kind is one dataclass with a ``kind``
field, decorated with ``@row_kind("<kind>", "<section>")``; a new section is also one ``Summary`` field
(``<section>: list | None = None``: None, and left out of the JSON, in summaries written before it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, ClassVar

SCHEMA_VERSION = 1
SUMMARY_FILE = "summary.json"
PER_SAMPLE_FILE = "per_sample.parquet"

# --- scores (formulas and directions: ``metrics.SCORES``) ---------------------------------------------------
# The structure scores summarised in summary.json (per_sample.parquet has every score and its chance value).
SUMMARY_SCORES: tuple[str, ...] = (
    "fmr", "tmr", "bl", "auc_misf", "auc_mist", "auc_bg", "dts", "dts_modules", "lift_finder", "lift_timing",
    "lift_structure", "lift_outside", "pointing_finder", "pointing_box", "rank_finder", "rank_structure",
    "rank_box", "roc_auc_structure", "roc_auc_box",
)
# The headline scores of the leaderboard and the model cards, with their printed labels, in table order.
SCORE_LABELS: dict[str, str] = {
    "fmr": "FMR", "tmr": "TMR", "bl": "BL", "auc_misf": "AUC-MISF", "auc_mist": "AUC-MIST",
    "auc_bg": "AUC-BG", "dts": "DtS",
}
HEADLINE_SCORES: tuple[str, ...] = tuple(SCORE_LABELS)
# The paper's three scores: checked across input sizes, and declared as benchmark tasks in eval.yaml.
PAPER_SCORES: tuple[str, ...] = ("fmr", "tmr", "bl")
# The scores compared pairwise: each CAM against each null map (vs_null) and synthetic vs real (transfer).
COMPARED_SCORES: tuple[str, ...] = ("fmr", "tmr", "bl", "dts")
VS_NULL_SCORES = TRANSFER_SCORES = COMPARED_SCORES
# The scores whose verdicts against the null maps the leaderboard, the headline and the model cards show.
VERDICT_SCORES: tuple[str, ...] = ("fmr", "bl", "dts")
PLOT_SCORE = "fmr"  # the structure score on the leaderboard plot's y axis
CAUSAL_SCORE = "causal_agreement"  # harness.causal, higher is better

# --- methods ------------------------------------------------------------------------------------------------
PAPER_METHODS: tuple[str, ...] = ("layercam", "eigengradcam", "xgradcam")
CAM_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "xgradcam": "XGrad-CAM", "layercam": "LayerCAM",
    "hirescam": "HiResCAM", "eigencam": "EigenCAM", "eigengradcam": "EigenGrad-CAM",
}
NULL_PREFIX = "null_"
NULL_BASELINES: tuple[str, ...] = ("null_uniform", "null_centre", "null_edge", "null_random")
UNIFORM = "null_uniform"  # the constant map: its scores are the chance values

# --- accuracy groups: group name -> the per-row columns that define its subsets -------------------------
ACCURACY_GROUPS: dict[str, tuple[str, ...]] = {
    "negative_kind": ("negative_kind",),
    "version_band": ("version_band",),
    "distortion": ("distortion", "severity"),
}


def is_null_baseline(method: str) -> bool:
    """A harness reference map (uniform, centre, edge, random), not a CAM of the model."""
    return method.startswith(NULL_PREFIX)


def method_label(method: str) -> str:
    """The printed name of a CAM method (``Grad-CAM``) or null map (``null: uniform``)."""
    if is_null_baseline(method):
        return f"null: {method.removeprefix(NULL_PREFIX)}"
    return CAM_LABELS.get(method, method)


# every known method (CAMs, then null maps) -> its printed name
METHOD_LABELS: dict[str, str] = {m: method_label(m) for m in (*CAM_LABELS, *NULL_BASELINES)}


# --- rows ---------------------------------------------------------------------------------------------------
class Record(Mapping):
    """A dataclass that serialises to a JSON object with its fields as keys, in order (``as_json``), reads
    like that object (``Mapping``: ``row["mean"]`` is ``row.mean``, nested records stay typed), and is
    built back from it (``from_json``: missing fields take their defaults, unknown ones are an error)."""

    def _pairs(self) -> dict:
        """JSON key -> typed value, in JSON order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def as_json(self) -> dict:
        return {key: _plain(value) for key, value in self._pairs().items()}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]):
        return _construct(cls, payload)

    def __getitem__(self, key: str) -> Any:
        return self._pairs()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs())

    def __len__(self) -> int:
        return len(self._pairs())


def _plain(value: Any) -> Any:
    """A record or a list of records as plain JSON values."""
    if isinstance(value, Record):
        return value.as_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _construct(cls: type, payload: Mapping[str, Any]):
    """``cls(**payload)``; ValueError naming unknown or missing fields."""
    unknown = sorted(set(payload) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    try:
        return cls(**payload)
    except TypeError as exc:
        raise ValueError(f"{cls.__name__} {str(exc).split('__init__() ')[-1]}") from None


# kind -> (the summary.json section its rows sit in, its row class)
ROW_KINDS: dict[str, tuple[str, type[Record]]] = {}


def row_kind(kind: str, section: str):
    """Register a row class under its ``kind`` (the value of its ``kind`` field) in ``section``."""

    def register(cls: type[Record]) -> type[Record]:
        ROW_KINDS[kind] = (section, cls)
        return cls

    return register


@dataclass(frozen=True, kw_only=True)
class AccuracyRow(Record):
    """Accuracy (higher is better) of every image of one config / split."""

    config: str
    split: str
    n: int
    value: float | None


@dataclass(frozen=True, kw_only=True)
class GroupedAccuracyRow(Record):
    """Accuracy of the subset ``subset`` (the group's ``ACCURACY_GROUPS`` columns -> values) of one config /
    split; in JSON the subset's columns sit between ``group`` and ``n``."""

    config: str
    split: str
    group: str
    subset: dict
    n: int
    value: float | None

    def __post_init__(self) -> None:
        if self.group not in ACCURACY_GROUPS or tuple(self.subset) != ACCURACY_GROUPS[self.group]:
            raise ValueError(f"accuracy group {self.group!r} with columns {list(self.subset)}; groups: "
                             f"{ACCURACY_GROUPS}")

    def _pairs(self) -> dict:
        return {"config": self.config, "split": self.split, "group": self.group, **self.subset, "n": self.n,
                "value": self.value}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]):
        group = payload.get("group")
        columns = ACCURACY_GROUPS.get(group, ())
        rest = {k: v for k, v in payload.items() if k not in columns}
        return super().from_json({**rest, "subset": {c: payload.get(c) for c in columns}})


def accuracy_row(payload: Mapping[str, Any]) -> Record:
    """An ``accuracy`` section row: grouped when it names a ``group``."""
    return (GroupedAccuracyRow if "group" in payload else AccuracyRow).from_json(payload)


# The statistics of a ``metrics.aggregate`` row, after its group columns: valid and invalid (NaN) values,
# mean, std and percentile bootstrap 95% CI over the valid ones.
ESTIMATE_FIELDS = [
    ("n", int),
    ("n_invalid", int | None, field(default=None)),
    ("mean", float | None),
    ("std", float | None, field(default=None)),
    ("ci_low", float | None, field(default=None)),
    ("ci_high", float | None, field(default=None)),
]
ESTIMATE_KEYS: tuple[str, ...] = tuple(spec[0] for spec in ESTIMATE_FIELDS)


def estimate_row(name: str, doc: str, keys: tuple[str, ...], kind: tuple[str, str] | None = None,
                 extra: tuple = ()):
    """A row class: ``kind`` (when given as (kind, section); registered there), the group columns
    ``keys``, ``ESTIMATE_FIELDS``, then ``extra`` fields."""
    spec = [("kind", str, field(default=kind[0]))] if kind else []
    spec += [(key, Any) for key in keys] + ESTIMATE_FIELDS + list(extra)
    cls = make_dataclass(name, spec, bases=(Record,), frozen=True, kw_only=True,
                         namespace={"__doc__": doc, "__module__": __name__})
    return row_kind(*kind)(cls) if kind else cls


StructureRow = estimate_row(
    "StructureRow", """One structure score of one method on one config / split / distortion / severity, and
    ``chance``: the mean of what a uniform map scores on the same samples.""",
    ("config", "split", "method", "distortion", "severity", "score"),
    extra=(("chance", float | None, field(default=None)),))
FaithfulnessRow = estimate_row(
    "FaithfulnessRow", "Insertion AUC (higher is better) or deletion AUC (lower is better) of one method.",
    ("config", "split", "method", "score"))
InterventionAgreementRow = estimate_row(
    "InterventionAgreementRow", "A method's causal agreement on ``interventions`` (higher is better).",
    ("config", "split", "method", "score"), kind=("intervention_agreement", "causal"))
InterventionDropRow = estimate_row(
    "InterventionDropRow", "The model's logit drop or flip rate when one part is intervened on.",
    ("config", "split", "intervention", "score"), kind=("intervention_drop", "causal"))


@row_kind("vs_null", "vs_null")
@dataclass(frozen=True, kw_only=True)
class VsNullRow(Record):
    """A CAM method against a null map, paired per image (``harness.vs_null``): mean difference, its CI and
    the verdict (better / indistinguishable / worse, None without a CI)."""

    kind: str = "vs_null"
    method: str
    config: str
    split: str
    distortion: str | None
    severity: int | None
    score: str
    null: str
    n: int
    diff_mean: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str | None


@dataclass(frozen=True, kw_only=True)
class MassDropRow(Record):
    """Per config / method: Spearman rho (and p) between the finder (timing) mass ratio and the finder
    (timing) occlusion logit drop over ``n_<part>`` samples, and the mean drops of the part and of its
    area-matched random control (``harness.causal``)."""

    config: str
    split: str
    method: str
    rho_fmr_drop_finder: float
    p_fmr_drop_finder: float
    n_finder: int
    mean_drop_finder: float | None
    mean_drop_finder_control: float | None
    rho_tmr_drop_timing: float
    p_tmr_drop_timing: float
    n_timing: int
    mean_drop_timing: float | None
    mean_drop_timing_control: float | None


@row_kind("threshold_iou", "robustness")
@dataclass(frozen=True, kw_only=True)
class ThresholdIouRow(Record):
    """A method's mean threshold-IoU with the box at each threshold ``t`` (``harness.faithfulness``)."""

    config: str
    split: str
    method: str
    kind: str = "threshold_iou"
    t: list
    iou: list


@row_kind("cross_resolution", "robustness")
@dataclass(frozen=True, kw_only=True)
class CrossResolutionRow(Record):
    """Mean and std of one score of one method at input side ``image_size``; at a side the model cannot
    take, the row holds only the config, split, side and the ``error`` (the score fields are left out)."""

    kind: str = "cross_resolution"
    config: str
    split: str
    method: str | None = None
    image_size: int
    score: str | None = None
    n: int | None = None
    mean: float | None = None
    std: float | None = None
    error: str | None = None

    def _pairs(self) -> dict:
        full = super()._pairs()
        if self.error is not None:
            return {k: full[k] for k in ("kind", "config", "split", "image_size", "error")}
        return {k: v for k, v in full.items() if k != "error"}


@row_kind("transfer", "robustness")
@dataclass(frozen=True, kw_only=True)
class TransferRow(Record):
    """Real-photo transfer gap of one score (``method`` None for accuracy; ``harness.transfer``)."""

    kind: str = "transfer"
    source: str
    target: str
    split: str
    method: str | None
    score: str
    source_mean: float | None
    target_mean: float | None
    gap: float | None


@dataclass(frozen=True, kw_only=True)
class LatencyRow(Record):
    """ms per image of one engine call for a method (or ``all`` together) and the peak memory; for a
    method that could not run on the model, ``ms_per_img`` is None and ``error`` its reason (left out of
    the JSON otherwise)."""

    method: str
    batch_size: int
    ms_per_img: float | None
    peak_mem_mb: float | None
    mem_kind: str | None = None
    device: str
    image_size: int | None = None
    repeats: int | None = None
    error: str | None = None

    def _pairs(self) -> dict:
        return {k: v for k, v in super()._pairs().items() if k != "error" or v is not None}


@row_kind("method_error", "method_errors")
@dataclass(frozen=True, kw_only=True)
class MethodErrorRow(Record):
    """A requested CAM method that could not run on the model (for example pytorch-grad-cam's FullGrad on
    a model it cannot handle), with the library's reason: it has no scores; the other methods are scored."""

    kind: str = "method_error"
    method: str
    error: str


# The keys of each shape of sanity row (``harness.sanity.sanity_rows``), in JSON order.
_SANITY_KEYS = {
    "error": ("kind", "test", "method", "score", "error"),
    "verdict": ("kind", "test", "method", "score", "step", "passed", "rho", "fmr", "fmr_ci", "chance_fmr",
                "n", "rule"),
    "estimate": ("kind", "test", "method", "step", "score", *ESTIMATE_KEYS, "depth", "blocks", "chance"),
}


@row_kind("sanity", "sanity")
@dataclass(frozen=True, kw_only=True)
class SanityRow(Record):
    """A sanity-check row (``harness.sanity``): with ``score`` ``"error"`` a method that could not run in
    ``test`` (its reason); with ``"verdict"`` the pass/fail rule's outcome at the test's last step
    (``passed`` True / False / None = undetermined, the mean Spearman ``rho`` to the original maps, the
    ``fmr`` with its 95% CI ``fmr_ci`` and ``chance_fmr``); else the aggregate of one similarity or
    structure score at one ``step`` (randomization ``depth``, the ``blocks`` re-drawn, ``chance`` for
    structure scores). Only the keys of the row's shape are in its JSON."""

    kind: str = "sanity"
    test: str
    method: str
    step: int | None = None
    score: str
    n: int | None = None
    n_invalid: int | None = None
    mean: float | None = None
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    depth: float | None = None
    blocks: list | None = None
    chance: float | None = None
    error: str | None = None
    passed: bool | None = None
    rho: float | None = None
    fmr: float | None = None
    fmr_ci: list | None = None
    chance_fmr: float | None = None
    rule: str | None = None

    def _pairs(self) -> dict:
        full = super()._pairs()
        keys = _SANITY_KEYS.get(self.score, _SANITY_KEYS["estimate"])
        return {k: full[k] for k in keys if k != "chance" or full[k] is not None}


@dataclass(frozen=True, kw_only=True)
class ModelEntry(Record):
    """The evaluated model. ``cam_grid`` ([h, w] of the raw maps), ``competent`` and ``competence_floor``
    are None in summaries written before they were recorded."""

    path: str
    backbone: str | None
    regime: str | None
    pretrained: str | None
    image_size: int | None
    name: str
    cam_grid: list | None = None
    competent: bool | None = None
    competence_floor: float | None = None
    source: dict | None = None  # where the model came from: {"path"} or {"repo_id", "revision", "commit"}

    def _pairs(self) -> dict:
        later = ("cam_grid", "competent", "competence_floor", "source")
        return {k: v for k, v in super()._pairs().items() if k not in later or v is not None}


@dataclass(frozen=True, kw_only=True)
class DataEntry(Record):
    """The evaluated dataset: folder or Hub id, revision (``harness.data.data_revision``) and configs."""

    path: str
    revision: str | None
    configs: list


def kind_row(payload: Mapping[str, Any]) -> Record:
    """The typed row of a JSON row with a ``kind`` (``ROW_KINDS``)."""
    kind = payload.get("kind")
    if kind not in ROW_KINDS:
        raise ValueError(f"unknown row kind {kind!r}; known: {', '.join(ROW_KINDS)}")
    return ROW_KINDS[kind][1].from_json(payload)


# section -> the reader of its rows without a ``kind``
PLAIN_ROWS: dict[str, Any] = {
    "accuracy": accuracy_row,
    "structure": StructureRow.from_json,
    "faithfulness": FaithfulnessRow.from_json,
    "causal": MassDropRow.from_json,
    "latency": LatencyRow.from_json,
}


def section_row(section: str, payload: Mapping[str, Any]) -> Record:
    """The typed row of a JSON row of ``section``: by its ``kind`` when it has one (a kind of this
    section), else the section's plain row."""
    kind = payload.get("kind")
    if kind is None and section in PLAIN_ROWS:
        return PLAIN_ROWS[section](payload)
    kinds = [k for k, (where, _) in ROW_KINDS.items() if where == section]
    if kind not in kinds:
        raise ValueError(f"row kind {kind!r} is not one of {', '.join(map(repr, kinds)) or 'none'}")
    return kind_row(payload)


def sections() -> list[str]:
    """The summary.json sections of rows, in order."""
    named = {*PLAIN_ROWS, *(section for section, _ in ROW_KINDS.values())}
    return [f.name for f in fields(Summary) if f.name in named]


@dataclass(kw_only=True)
class Summary(Record):
    """One evaluation's summary.json. ``hardware`` and ``settings`` are free-form provenance. A field whose
    default is None (``settings``, ``vs_null``) is None in summaries written before it was recorded, and
    is then left out of the JSON."""

    schema_version: int = SCHEMA_VERSION
    package_version: str
    created: str | None = None
    model: ModelEntry
    data: DataEntry
    hardware: dict
    settings: dict | None = None
    accuracy: list = field(default_factory=list)
    structure: list = field(default_factory=list)
    vs_null: list | None = None
    faithfulness: list = field(default_factory=list)
    causal: list = field(default_factory=list)
    robustness: list = field(default_factory=list)
    latency: list = field(default_factory=list)
    method_errors: list | None = None
    sanity: list | None = None

    CORE: ClassVar[tuple[str, ...]] = ("package_version", "model", "data", "accuracy", "structure", "latency")

    def _pairs(self) -> dict:
        later = {f.name for f in fields(self) if f.default is None}
        return {k: v for k, v in super()._pairs().items() if k not in later or v is not None}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Summary:
        """Check the schema version, the sections and every row; ValueError naming what is wrong."""
        version = payload.get("schema_version") if isinstance(payload, Mapping) else None
        if version != SCHEMA_VERSION:
            raise ValueError(f"results schema_version {version!r}; this package reads schema "
                             f"{SCHEMA_VERSION} (re-run the evaluation with this version)")
        missing = [k for k in cls.CORE if k not in payload]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}: not a cambench-qr evaluation summary")
        values = dict(payload)
        values["model"] = ModelEntry.from_json(payload["model"])
        values["data"] = DataEntry.from_json(payload["data"])
        for name in sections():
            if values.get(name) is not None:
                try:
                    values[name] = [section_row(name, row) for row in values[name]]
                except ValueError as exc:
                    raise ValueError(f"section {name!r}: {exc}") from None
        return _construct(cls, values)

    def config_accuracy(self) -> list[AccuracyRow]:
        """The per-config accuracy rows (all images of a config)."""
        return [r for r in self.accuracy if isinstance(r, AccuracyRow)]

    def grouped_accuracy(self) -> list[GroupedAccuracyRow]:
        """The accuracy rows of subsets (negative kind, version band, distortion severity)."""
        return [r for r in self.accuracy if isinstance(r, GroupedAccuracyRow)]

    def rows(self, cls: type[Record]) -> list:
        """Every row of class ``cls`` in the summary's sections."""
        return [r for name in sections() for r in (getattr(self, name) or ()) if isinstance(r, cls)]
