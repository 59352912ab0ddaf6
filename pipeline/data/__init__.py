"""Data sets: drawn at random (:mod:`.synthetic`), given by a file or scikit-learn (:mod:`.given`), and the
registry of data sources by ``input_distribution`` (:mod:`.sources`)."""

from pipeline.data.dataset import Dataset
from pipeline.data.given import DataFileError, GivenData, load_given
from pipeline.data.sources import DATA_SOURCES, DataSource, data_source
from pipeline.data.synthetic import (
    INPUT_DISTRIBUTIONS,
    TARGETS,
    TEACHER_KINDS,
    add_label_noise,
    affine_targets,
    append_bias,
    draw_affine_map,
    draw_inputs,
    make_dataset,
    random_labels,
    teacher_network,
    teacher_targets,
)

__all__ = [
    "DATA_SOURCES",
    "INPUT_DISTRIBUTIONS",
    "TARGETS",
    "TEACHER_KINDS",
    "DataFileError",
    "DataSource",
    "Dataset",
    "GivenData",
    "add_label_noise",
    "affine_targets",
    "append_bias",
    "data_source",
    "draw_affine_map",
    "draw_inputs",
    "load_given",
    "make_dataset",
    "random_labels",
    "teacher_network",
    "teacher_targets",
]
